#!/usr/bin/env bash
# Mail relay benchmark (see shared BENCH.md, "Mail relay"):
#   smtp-source -4 -s 20 -m 10000 -l 10240 -> relay -> smtp-sink -M 10000
# for Postfix (queue on disk, relayhost = the sink, logging on) and for
# mailrelay (durable queue with fsync before 250, event log on), side by
# side, RUNS times each (default 3), medians and ratio.
#
# Loopback only. Postfix runs from its own config directory on a non-25
# port and never touches the machine's own mail setup (/etc/postfix is left
# as it is; if the package is not installed it is installed with
# "No configuration").
#
# Usage: bench/mail/run.sh            (MSGS=10000 SESSIONS=20 RUNS=3)
#        VARIANTS="postfix ours auth full" (default: all four; add "rspamd"
#        for mailrelay + SPF/DKIM/DMARC with Debian's rspamd as the scorer)
#        PF_CONC=20  Postfix's destination concurrency (its default is 20)
#
# "full" is mailrelay with everything on: SPF+DKIM+DMARC (DNS fixture),
# a real clamd (Debian clamav-daemon, tiny signature database written here:
# no download) scanning every message, and spam + advertising scoring. It
# runs report-only so that every message is delivered (nothing the checks
# would quarantine is held back), which keeps the sink count exact.
set -euo pipefail

MSGS=${MSGS:-10000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-10240}
RUNS=${RUNS:-3}
VARIANTS=${VARIANTS:-postfix ours auth full}
PF_CONC=${PF_CONC:-20}
CLAMD_PORT=12528
WORK=${WORK:-/tmp/seccloud-bench-mail}
PF_PORT=12525   # Postfix smtpd
SINK_PORT=12526 # smtp-sink (the next hop of both)
OUR_PORT=12527  # mailrelay

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

. "$here/../lib/peers.sh"
need=()
command -v smtp-source >/dev/null && command -v postfix >/dev/null || need+=(postfix)
command -v bc >/dev/null || need+=(bc)
want() { [[ " $VARIANTS " == *" $1 "* ]]; }
if want full && ! command -v clamd >/dev/null && [ ! -x /usr/sbin/clamd ]; then need+=(clamav-daemon); fi
if want rspamd && ! command -v rspamd >/dev/null; then need+=(rspamd); fi
RSPAMD_PORT=12529
bench_install "${need[@]}"

rm -rf "$WORK"
mkdir -p "$WORK"
PF=$WORK/postfix
# Delivery to the one next hop: Postfix's default concurrency (20, or
# PF_CONC), started at that concurrency instead of ramping up from 5, and
# connections to the relayhost always cached (the maillog's conn_use=
# shows Postfix already reused them on demand under this load; this
# makes it explicit).
postfix_instance "$PF" $PF_PORT $SINK_PORT \
	"default_destination_concurrency_limit = $PF_CONC" "initial_destination_concurrency = $PF_CONC"

# --- ours ---------------------------------------------------------------------
(cd "$root" && go build -o "$WORK/mailrelayd" ./mailrelay/internal/cmd/mailrelayd)

# wait_port PORT: wait (up to 30 s) until something listens on PORT.
wait_port() {
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listening on port $1" >&2
	return 1
}

run_sink() { smtp-sink -u nobody -M "$MSGS" 127.0.0.1:$SINK_PORT 1024 & SINK=$!; sleep 0.3; }

# measure PORT: sets RATE to msg/s from the first message sent to the
# sink receiving the last (the sink exits after MSGS messages).
measure() {
	local port=$1
	local t0 t1
	t0=$(date +%s.%N)
	smtp-source -4 -s "$SESSIONS" -m "$MSGS" -l "$SIZE" -M relay.bench.test \
		-f sender@client.bench.test -t rcpt@dest.example.net 127.0.0.1:"$port"
	wait "$SINK"
	t1=$(date +%s.%N)
	RATE=$(echo "$MSGS / ($t1 - $t0)" | bc -l)
}

cleanup() {
	[ -n "${SINK:-}" ] && kill "$SINK" 2>/dev/null || true
	[ -n "${OURS:-}" ] && kill "$OURS" 2>/dev/null || true
	[ -n "${CLAMD:-}" ] && kill "$CLAMD" 2>/dev/null || true
	[ -n "${RSPAMD:-}" ] && kill "$RSPAMD" 2>/dev/null || true
	postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

median_of() { printf '%s\n' "$@" | median; }

# pfdelays: Postfix's average delays (a=before qmgr, b=in qmgr, c=connection
# setup, d=transmission) from its maillog, to see where the time goes.
pfdelays() {
	grep -o 'delays=[0-9./]*' "$PF/maillog" 2>/dev/null | awk -F'[=/]' '{a+=$2;b+=$3;c+=$4;d+=$5;n++} END {if (n) printf "delays a=%.3f b=%.3f c=%.3f d=%.3f s, n=%d", a/n, b/n, c/n, d/n, n}'
}

pf=()
ours=()
auth=()
full=()
rsp=()
for i in $(seq 1 "$RUNS"); do
	want postfix || break
	# Postfix
	: >"$PF/maillog"
	run_sink
	postfix -c "$PF/etc" start >/dev/null 2>&1
	sleep 1
	measure $PF_PORT
	r=$RATE
	postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
	sleep 1
	pf+=("$r")
	echo "run $i postfix   $(printf '%.0f' "$r") msg/s ($(pfdelays))"
done
for i in $(seq 1 "$RUNS"); do
	want ours || break
	# mailrelay, fsync on, event log on
	rm -rf "$WORK/queue" "$WORK/events.log"
	run_sink
	"$WORK/mailrelayd" -listen 127.0.0.1:$OUR_PORT -queue "$WORK/queue" -smarthost 127.0.0.1:$SINK_PORT \
		-tenant-net 127.0.0.1/32 -tenant-domain client.bench.test -log "$WORK/events.log" 2>"$WORK/mailrelayd.err" &
	OURS=$!
	wait_port $OUR_PORT
	measure $OUR_PORT
	r=$RATE
	kill "$OURS"
	wait "$OURS" || true
	OURS=
	ours+=("$r")
	echo "run $i mailrelay $(printf '%.0f' "$r") msg/s ($(wc -l <"$WORK/events.log") events logged)"
done

# mailrelay again with sender authentication on: the relay's tenant is now
# dest.example.net (the recipient), the client 127.0.0.1 is "the internet",
# so every message is inbound and gets SPF + DKIM + DMARC (DNS answered by a
# built-in fixture, no network) and an Authentication-Results header.
for i in $(seq 1 "$RUNS"); do
	want auth || break
	rm -rf "$WORK/queue" "$WORK/events.log"
	run_sink
	"$WORK/mailrelayd" -listen 127.0.0.1:$OUR_PORT -queue "$WORK/queue" -auth-fixture \
		-tenant-net 127.0.0.2/32 -tenant-domain dest.example.net -tenant-server 127.0.0.1:$SINK_PORT \
		-log "$WORK/events.log" 2>"$WORK/mailrelayd.err" &
	OURS=$!
	wait_port $OUR_PORT
	measure $OUR_PORT
	kill "$OURS"
	wait "$OURS" || true
	OURS=
	auth+=("$RATE")
	echo "run $i mailrelay+auth $(printf '%.0f' "$RATE") msg/s ($(grep -c '"spf":"pass"' "$WORK/events.log") SPF pass)"
done

# Everything on: SPF/DKIM/DMARC + clamd + spam/ad scoring, report-only.
if want full; then
	CL=$WORK/clamd
	mkdir -p "$CL/db"
	eicar='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
	printf 'Bench.EICAR:0:*:%s\n' "$(printf '%s' "$eicar" | od -An -tx1 | tr -d ' \n')" >"$CL/db/bench.ndb"
	cat >"$CL/clamd.conf" <<EOF
Foreground yes
DatabaseDirectory $CL/db
TCPAddr 127.0.0.1
TCPSocket $CLAMD_PORT
MaxThreads 8
SelfCheck 0
TemporaryDirectory $CL
LogFile $CL/clamd.log
EOF
	clamdbin=$(command -v clamd || echo /usr/sbin/clamd)
	"$clamdbin" -c "$CL/clamd.conf" >"$CL/clamd.out" 2>&1 &
	CLAMD=$!
	for _ in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$CLAMD_PORT" && printf 'zPING\0' >&3 && head -c 4 <&3 | grep -q PONG) 2>/dev/null; then
			break
		fi
		sleep 0.2
	done
	for i in $(seq 1 "$RUNS"); do
		rm -rf "$WORK/queue" "$WORK/events.log" "$WORK/quarantine"
		run_sink
		"$WORK/mailrelayd" -listen 127.0.0.1:$OUR_PORT -queue "$WORK/queue" -auth-fixture -spam -clamd 127.0.0.1:$CLAMD_PORT \
			-report-only -quarantine "$WORK/quarantine" \
			-tenant-net 127.0.0.2/32 -tenant-domain dest.example.net -tenant-server 127.0.0.1:$SINK_PORT \
			-log "$WORK/events.log" 2>"$WORK/mailrelayd.err" &
		OURS=$!
		wait_port $OUR_PORT
		measure $OUR_PORT
		kill "$OURS"
		wait "$OURS" || true
		OURS=
		full+=("$RATE")
		echo "run $i mailrelay+all $(printf '%.0f' "$RATE") msg/s ($(grep -c '"av":"clean"' "$WORK/events.log" || true) AV clean, $(grep -c '"spam_score"' "$WORK/events.log" || true) spam-scored)"
	done
	kill "$CLAMD" 2>/dev/null || true
	wait "$CLAMD" 2>/dev/null || true
	CLAMD=
fi

# mailrelay + SPF/DKIM/DMARC with rspamd scoring every message instead of
# the built-in scorer (report-only, like "full"). rspamd runs with a
# minimal configuration written here: its own rules, one normal worker per
# core, no plugin configured (no redis, no network), DNS at a closed
# loopback port.
if want rspamd; then
	RS=$WORK/rspamd
	mkdir -p "$RS"
	printf 'com\nnet\norg\njp\ntest\n' >"$RS/tld.dat"
	cat >"$RS/rspamd.conf" <<EOF
lua = "\$RULESDIR/rspamd.lua";
.include "\$CONFDIR/metrics.conf"
.include "\$CONFDIR/groups.conf"
options { pidfile = "$RS/rspamd.pid"; dns { nameserver = ["127.0.0.1:1"]; timeout = 0.2s; retransmits = 1; } url_tld = "$RS/tld.dat"; local_addrs = []; }
logging { type = "file"; filename = "$RS/rspamd.log"; level = "warning"; }
actions { reject = 15; add_header = 6; greylist = 4; }
worker "normal" { bind_socket = "127.0.0.1:$RSPAMD_PORT"; count = $(nproc); }
modules { path = "\${PLUGINSDIR}"; }
EOF
	rspamd -f -i -c "$RS/rspamd.conf" --var=DBDIR="$RS" --var=RUNDIR="$RS" --var=LOGDIR="$RS" --var=LOCAL_CONFDIR="$RS" >"$RS/out.log" 2>&1 &
	RSPAMD=$!
	for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$RSPAMD_PORT/ping" && break; sleep 0.2; done
	for i in $(seq 1 "$RUNS"); do
		rm -rf "$WORK/queue" "$WORK/events.log" "$WORK/quarantine"
		run_sink
		"$WORK/mailrelayd" -listen 127.0.0.1:$OUR_PORT -queue "$WORK/queue" -auth-fixture -rspamd "http://127.0.0.1:$RSPAMD_PORT" \
			-report-only -quarantine "$WORK/quarantine" \
			-tenant-net 127.0.0.2/32 -tenant-domain dest.example.net -tenant-server 127.0.0.1:$SINK_PORT \
			-log "$WORK/events.log" 2>"$WORK/mailrelayd.err" &
		OURS=$!
		wait_port $OUR_PORT
		measure $OUR_PORT
		kill "$OURS"
		wait "$OURS" || true
		OURS=
		rsp+=("$RATE")
		echo "run $i mailrelay+rspamd $(printf '%.0f' "$RATE") msg/s ($(grep -c '"spam_scorer":"rspamd"' "$WORK/events.log" || true) scored by rspamd)"
	done
	kill "$RSPAMD" 2>/dev/null || true
	wait "$RSPAMD" 2>/dev/null || true
	RSPAMD=
fi

if [ ${#pf[@]} -gt 0 ]; then printf 'median postfix   %.0f msg/s\n' "$(median_of "${pf[@]}")"; fi
if [ ${#ours[@]} -gt 0 ]; then printf 'median mailrelay %.0f msg/s\n' "$(median_of "${ours[@]}")"; fi
if [ ${#pf[@]} -gt 0 ] && [ ${#ours[@]} -gt 0 ]; then
	printf 'ratio            %.2fx\n' "$(echo "$(median_of "${ours[@]}") / $(median_of "${pf[@]}")" | bc -l)"
fi
if [ ${#auth[@]} -gt 0 ]; then printf 'median mailrelay with SPF/DKIM/DMARC %.0f msg/s\n' "$(median_of "${auth[@]}")"; fi
if [ ${#full[@]} -gt 0 ]; then printf 'median mailrelay with SPF/DKIM/DMARC + clamd + spam %.0f msg/s\n' "$(median_of "${full[@]}")"; fi
if [ ${#rsp[@]} -gt 0 ]; then printf 'median mailrelay with SPF/DKIM/DMARC + rspamd %.0f msg/s\n' "$(median_of "${rsp[@]}")"; fi
