#!/usr/bin/env bash
# Side-by-side DNS benchmark of shared/BENCH.md: dnsres vs Unbound 1.17,
# both forwarding bench.test. to an NSD fixture on 127.0.0.1:15353, loaded
# by dnsperf on loopback. Prints the medians of RUNS runs and the ratios.
#
#   bash bench/dns/run.sh               # everything (about 6 minutes)
#   RUNS=1 SECS=5 bash bench/dns/run.sh # a quick look
#   SINK=count bash bench/dns/run.sh    # our query log into a counting sink
#   MEM_N=1000000 bash bench/dns/run.sh # memory measured with 1 M cached names (default 200,000; 0 skips)
#   DNSRESD_FLAGS="-sockets -1 -detect=false" bash bench/dns/run.sh  # flags of bench/dns/dnsresd
#   ONLY=mem bash bench/dns/run.sh      # only the memory figure (ONLY=cached, miss or mem)
#
# Memory is the growth of each server's resident set (VmRSS) divided by
# the number of entries, after MEM_N unique names are asked once
# ("inserted") and after they are all asked a second time ("hit": Unbound
# changes nothing, dnsres attaches the query-log data to each entry).
# dnsresd runs with Go's defaults (GOGC=100, no GOMEMLIMIT) unless
# GOGC / GOMEMLIMIT are set in the environment (they are printed).
#
# Loopback only. Needs root for apt-get (skipped when the tools are there).
set -euo pipefail

RUNS=${RUNS:-3}
ONLY=${ONLY:-all}
SECS=${SECS:-20}
SINK=${SINK:-store}
NSD_PORT=15353
UNBOUND_PORT=15354
OURS_PORT=15355
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=$(mktemp -d /tmp/dnsbench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

. "$ROOT/bench/lib/peers.sh"
need=()
command -v nsd >/dev/null || need+=(nsd)
command -v unbound >/dev/null || need+=(unbound)
command -v dnsperf >/dev/null || need+=(dnsperf)
bench_install "${need[@]}"

# --- the fixture: NSD serving bench.test. ---------------------------------
bench_zone "$W/bench.test.zone" '*.miss 86400 IN A 198.19.255.1'
nsd_conf "$W" $NSD_PORT
nsd -d -c "$W/nsd.conf" &
PIDS+=($!)

unbound_conf "$W" $UNBOUND_PORT $NSD_PORT

(cd "$ROOT" && go build -o "$W/dnsresd" ./bench/dns/dnsresd && go build -o "$W/respdiff" ./bench/dns/respdiff)

# --- query files -----------------------------------------------------------
awk 'BEGIN { for (i = 0; i < 10000; i++) printf "h%05d.bench.test A\n", i }' >"$W/cached.txt"
awk -v seed="$RANDOM$RANDOM" 'BEGIN { srand(seed); for (i = 0; i < 3000000; i++) printf "r%d-%d.miss.bench.test A\n", int(rand() * 1e9), i }' >"$W/miss.txt"
# respdiff: every cached name, NODATA, NXDOMAIN, wildcard and apex questions.
{
	cat "$W/cached.txt"
	awk 'BEGIN { for (i = 0; i < 1000; i++) printf "h%05d.bench.test AAAA\n", i * 10 }'
	awk 'BEGIN { for (i = 0; i < 1000; i++) printf "nx%05d.bench.test A\n", i }'
	awk 'BEGIN { for (i = 0; i < 1000; i++) printf "w%05d.miss.bench.test A\n", i }'
	printf '%s\n' "bench.test SOA" "bench.test NS" "bench.test MX" "bench.test TXT" "ns1.bench.test A" "miss.bench.test A" "H00001.Bench.Test A"
} >"$W/diff.txt"
MEM_N=${MEM_N:-200000}
head -n "$MEM_N" "$W/miss.txt" | sed 's/^r/m/' >"$W/mem.txt"

wait_port() { # port
	for _ in $(seq 100); do
		if dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 ns1.bench.test A >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "server on port $1 did not answer" >&2
	return 1
}
wait_port $NSD_PORT

declare -A PID
start() { # unbound|ours
	case $1 in
	unbound) unbound -d -c "$W/unbound.conf" >"$W/unbound.log" 2>&1 & ;;
	ours) "$W/dnsresd" -listen 127.0.0.1:$OURS_PORT -upstream 127.0.0.1:$NSD_PORT -sink "$SINK" -store-dir "$W/events" ${DNSRESD_FLAGS:-} >>"$W/ours.log" 2>&1 & ;;
	esac
	PID[$1]=$!
	PIDS+=("${PID[$1]}")
	wait_port "$(port "$1")"
}
stop() { # unbound|ours
	kill "${PID[$1]}" 2>/dev/null || true
	wait "${PID[$1]}" 2>/dev/null || true
	rm -rf "$W/events"
}
port() { if [ "$1" = unbound ]; then echo $UNBOUND_PORT; else echo $OURS_PORT; fi; }

perf() { # port file extra-args... → prints "qps lost avg_ms"
	local p=$1 f=$2
	shift 2
	dnsperf -s 127.0.0.1 -p "$p" -d "$f" -c 32 -q 100 -t 2 "$@" >"$W/perf.out" 2>&1 || true
	awk '/Queries per second:/ { q = $4 } /Queries lost:/ { l = $3 } /Average Latency/ { a = $4 * 1000 } END { printf "%.0f %s %.3f\n", q, l, a }' "$W/perf.out"
}

p99() { # port file → p99 latency in ms from a 5 s verbose run
	dnsperf -s 127.0.0.1 -p "$1" -d "$2" -c 32 -q 100 -t 2 -l 5 -v 2>/dev/null |
		awk '$1 == ">" { print $NF * 1000 }' | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.3f\n", v[int(NR * 0.99)]; else print "n/a" }'
}


declare -A RES
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); dnsresd GOGC=${GOGC:-default} GOMEMLIMIT=${GOMEMLIMIT:-none}"
# cached: both servers up and warmed by one pass; runs alternate between
# them so that both see the same load from the rest of the machine.
if [ "$ONLY" = all ] || [ "$ONLY" = cached ]; then
for srv in unbound ours; do
	start $srv
	perf "$(port $srv)" "$W/cached.txt" -n 1 >/dev/null
done
for r in $(seq "$RUNS"); do
	for srv in unbound ours; do
		out=$(perf "$(port $srv)" "$W/cached.txt" -l "$SECS")
		echo "$srv cached run $r: qps lost avg_ms = $out"
		RES[$srv-cached]+="${out%% *}"$'\n'
	done
done
echo "== respdiff: Unbound (a) vs dnsres (b), $(wc -l <"$W/diff.txt") questions =="
"$W/respdiff" -a 127.0.0.1:$UNBOUND_PORT -b 127.0.0.1:$OURS_PORT -q "$W/diff.txt" | tee "$W/respdiff.out"
for srv in unbound ours; do
	RES[$srv-cached-p99]=$(p99 "$(port $srv)" "$W/cached.txt")
	echo "$srv cached p99 (5 s verbose run): ${RES[$srv-cached-p99]} ms"
	stop $srv
done
fi
# miss: a fresh server per run; unique names, each sent once.
if [ "$ONLY" = all ] || [ "$ONLY" = miss ]; then
for r in $(seq "$RUNS"); do
	for srv in unbound ours; do
		start $srv
		out=$(perf "$(port $srv)" "$W/miss.txt" -n 1 -l "$SECS")
		echo "$srv miss run $r: qps lost avg_ms = $out"
		RES[$srv-miss]+="${out%% *}"$'\n'
		stop $srv
	done
done
fi

# memory: a fresh server, MEM_N unique names cached, resident memory
# before and after (our query log into a counting sink: the cache alone).
rss() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
if [ "$MEM_N" -gt 0 ] && { [ "$ONLY" = all ] || [ "$ONLY" = mem ]; }; then
	perb() { awk -v a="$1" -v b="$2" -v n="$MEM_N" 'BEGIN { printf "%.0f bytes/entry, %.0f MiB per 1 M entries (RSS %d → %d KiB)", (a - b) * 1024 / n, (a - b) * 1024 / n * 1e6 / 1048576, b, a }'; }
	for srv in unbound ours; do
		SINK_SAVED=$SINK
		SINK=count
		start $srv
		before=$(rss "${PID[$srv]}")
		perf "$(port $srv)" "$W/mem.txt" -n 1 >/dev/null
		sleep 1
		after=$(rss "${PID[$srv]}")
		RES[$srv-mem]=$(perb "$after" "$before")
		echo "$srv memory, $MEM_N entries inserted: ${RES[$srv-mem]}"
		perf "$(port $srv)" "$W/mem.txt" -n 1 >"$W/perf-hit.txt"
		sleep 1
		hit=$(rss "${PID[$srv]}")
		RES[$srv-mem-hit]=$(perb "$hit" "$before")
		echo "$srv memory, $MEM_N entries after a hit each: ${RES[$srv-mem-hit]}"
		stop $srv
		SINK=$SINK_SAVED
	done
fi

echo
echo "== medians of $RUNS runs, ${SECS}s each (dnsperf -c 32 -q 100 -t 2; our query log: $SINK) =="
for w in cached miss; do
	[ -n "${RES[unbound-$w]:-}" ] || continue
	u=$(printf '%s' "${RES[unbound-$w]}" | median)
	o=$(printf '%s' "${RES[ours-$w]}" | median)
	ratio=$(awk -v o="$o" -v u="$u" 'BEGIN { printf "%.2f", o / u }')
	line="$w: unbound $u qps, dnsres $o qps, ratio $ratio"
	if [ $w = cached ]; then line+=" (p99 unbound ${RES[unbound-cached-p99]} ms, dnsres ${RES[ours-cached-p99]} ms)"; fi
	echo "$line"
done
if [ -n "${RES[ours-mem]:-}" ]; then
	echo "memory, inserted: unbound ${RES[unbound-mem]}; dnsres ${RES[ours-mem]}"
	echo "memory, after a hit each: unbound ${RES[unbound-mem-hit]}; dnsres ${RES[ours-mem-hit]}"
fi
grep -m1 '^respdiff:' "$W/respdiff.out" 2>/dev/null || true
grep -h "dnsresd:" "$W/ours.log" | tail -2 || true
