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
set -euo pipefail

MSGS=${MSGS:-10000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-10240}
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/seccloud-bench-mail}
PF_PORT=12525   # Postfix smtpd
SINK_PORT=12526 # smtp-sink (the next hop of both)
OUR_PORT=12527  # mailrelay

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix bc >/dev/null
fi
command -v bc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null

rm -rf "$WORK"
mkdir -p "$WORK"
PF=$WORK/postfix
mkdir -p "$PF/etc" "$PF/spool" "$PF/data"

# --- Postfix in its own instance -------------------------------------------
cp /etc/postfix/master.cf.proto "$PF/etc/master.cf" 2>/dev/null || cp /usr/share/postfix/master.cf.dist "$PF/etc/master.cf"
# smtpd on the bench port only, and the postlog service for maillog_file.
sed -i -e 's/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:'$PF_PORT' inet  n       -       n       -       -       smtpd/' "$PF/etc/master.cf"
grep -q "^127.0.0.1:$PF_PORT" "$PF/etc/master.cf" || {
	sed -i -e '/^smtp      inet/d' "$PF/etc/master.cf"
	echo "127.0.0.1:$PF_PORT inet  n       -       n       -       -       smtpd" >>"$PF/etc/master.cf"
}
sed -i -e 's/^\(\S\+\s\+\S\+\s\+\S\+\s\+\S\+\s\+\)y\(\s\)/\1n\2/' "$PF/etc/master.cf" # no chroot
grep -q '^postlog' "$PF/etc/master.cf" || echo 'postlog   unix-dgram n  -       n       -       1       postlogd' >>"$PF/etc/master.cf"
cat >"$PF/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = $PF/maillog
maillog_file_prefixes = $WORK
smtp_tls_security_level = none
smtpd_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps =
biff = no
EOF
chown -R postfix "$PF/data"
postfix -c "$PF/etc" set-permissions >/dev/null 2>&1 || true
postfix -c "$PF/etc" check

# --- ours ---------------------------------------------------------------------
(cd "$root" && go build -o "$WORK/mailrelayd" ./mailrelay/internal/cmd/mailrelayd)

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
	postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

pf=()
ours=()
for i in $(seq 1 "$RUNS"); do
	# Postfix
	run_sink
	postfix -c "$PF/etc" start >/dev/null 2>&1
	sleep 1
	measure $PF_PORT
	r=$RATE
	postfix -c "$PF/etc" stop >/dev/null 2>&1 || true
	sleep 1
	pf+=("$r")
	echo "run $i postfix   $(printf '%.0f' "$r") msg/s"

	# mailrelay, fsync on, event log on
	rm -rf "$WORK/queue" "$WORK/events.log"
	run_sink
	"$WORK/mailrelayd" -listen 127.0.0.1:$OUR_PORT -queue "$WORK/queue" -smarthost 127.0.0.1:$SINK_PORT \
		-tenant-net 127.0.0.1/32 -tenant-domain client.bench.test -log "$WORK/events.log" 2>"$WORK/mailrelayd.err" &
	OURS=$!
	sleep 0.5
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
auth=()
for i in $(seq 1 "$RUNS"); do
	rm -rf "$WORK/queue" "$WORK/events.log"
	run_sink
	"$WORK/mailrelayd" -listen 127.0.0.1:$OUR_PORT -queue "$WORK/queue" -auth-fixture \
		-tenant-net 127.0.0.2/32 -tenant-domain dest.example.net -tenant-server 127.0.0.1:$SINK_PORT \
		-log "$WORK/events.log" 2>"$WORK/mailrelayd.err" &
	OURS=$!
	sleep 0.5
	measure $OUR_PORT
	kill "$OURS"
	wait "$OURS" || true
	OURS=
	auth+=("$RATE")
	echo "run $i mailrelay+auth $(printf '%.0f' "$RATE") msg/s ($(grep -c '"spf":"pass"' "$WORK/events.log") SPF pass)"
done

mp=$(median "${pf[@]}")
mo=$(median "${ours[@]}")
printf 'median postfix   %.0f msg/s\n' "$mp"
printf 'median mailrelay %.0f msg/s\n' "$mo"
printf 'ratio            %.2fx\n' "$(echo "$mo / $mp" | bc -l)"
printf 'median mailrelay with SPF/DKIM/DMARC %.0f msg/s\n' "$(median "${auth[@]}")"
