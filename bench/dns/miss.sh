#!/usr/bin/env bash
# Cache misses through a real little DNS hierarchy, side by side:
# dnsres (bench/dns/dnsresd -root) vs Unbound 1.17, both *recursing* from
# root hints — no forwarding. Three NSD instances on loopback, port 53:
#
#   127.0.54.1  the root zone "."   (test. → ns.tld.test. 127.0.54.2)
#   127.0.54.2  the TLD "test."     (bench.test. → ns1.bench.test. 127.0.54.3)
#   127.0.54.3  "bench.test."       (the shared/BENCH.md fixture: h00000…h09999,
#                                    *.miss wildcard)
#
# Port 53 because Unbound sends queries to servers learned from referrals
# on port 53 only. Workload: the miss workload of shared/BENCH.md (unique
# names r<random>-<n>.miss.bench.test sent once, dnsperf -c 32 -q 100 -t 2,
# a fresh server per run); then respdiff of the two resolvers over the
# same 13,007 questions as run.sh, answered through the hierarchy.
#
#   bash bench/dns/miss.sh                 # 3 runs of 20 s (about 3 minutes)
#   RUNS=1 SECS=5 bash bench/dns/miss.sh   # a quick look
#   SINK=count bash bench/dns/miss.sh      # our query log into a counting sink
#
# Loopback only (the resolvers are limited to 127.0.0.0/8). Needs root
# (port 53, apt-get when nsd/unbound/dnsperf are missing).
set -euo pipefail

RUNS=${RUNS:-3}
SECS=${SECS:-20}
SINK=${SINK:-store}
UNBOUND_PORT=15364
OURS_PORT=15365
ROOT_IP=127.0.54.1
TLD_IP=127.0.54.2
LEAF_IP=127.0.54.3
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=$(mktemp -d /tmp/dnsmiss.XXXXXX)
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
command -v dig >/dev/null || need+=(bind9-dnsutils)
bench_install "${need[@]}"

# --- the hierarchy: three NSD instances ------------------------------------
cat >"$W/root.zone" <<ZONE
\$ORIGIN .
\$TTL 86400
.              IN SOA a.root.test. hostmaster.root.test. 1 1800 900 604800 86400
.              IN NS  a.root.test.
test.          IN NS  ns.tld.test.
ns.tld.test.   IN A   $TLD_IP
a.root.test.   IN A   $ROOT_IP
ZONE
cat >"$W/test.zone" <<ZONE
\$ORIGIN test.
\$TTL 86400
@              IN SOA ns.tld hostmaster 1 1800 900 604800 3600
@              IN NS  ns.tld
ns.tld         IN A   $TLD_IP
a.root         IN A   $ROOT_IP
bench          IN NS  ns1.bench
ns1.bench      IN A   $LEAF_IP
ZONE
{
	echo '$ORIGIN bench.test.'
	echo '$TTL 86400'
	echo '@ IN SOA ns1 hostmaster 1 3600 600 864000 86400'
	echo '@ IN NS ns1'
	echo "ns1 IN A $LEAF_IP"
	echo '*.miss 86400 IN A 198.19.255.1'
	awk 'BEGIN { for (i = 0; i < 10000; i++) printf "h%05d 86400 IN A 198.18.%d.%d\n", i, int(i / 250), i % 250 + 1 }'
} >"$W/bench.test.zone"

nsd_start() { # name ip zone-name zone-file
	local d="$W/nsd-$1"
	mkdir -p "$d"
	cat >"$d/nsd.conf" <<CONF
server:
  ip-address: $2
  port: 53
  username: ""
  chroot: ""
  zonesdir: "$W"
  database: ""
  zonelistfile: "$d/zone.list"
  xfrdfile: "$d/xfrd.state"
  xfrdir: "$d"
  pidfile: "$d/nsd.pid"
  logfile: "$d/nsd.log"
  verbosity: 0
  rrl-ratelimit: 0
  refuse-any: no
remote-control:
  control-enable: no
zone:
  name: "$3"
  zonefile: "$W/$4"
CONF
	nsd -d -c "$d/nsd.conf" &
	PIDS+=($!)
}
nsd_start root $ROOT_IP . root.zone
nsd_start tld $TLD_IP test. test.zone
nsd_start leaf $LEAF_IP bench.test. bench.test.zone

cat >"$W/root.hints" <<HINTS
.              3600000 NS a.root.test.
a.root.test.   3600000 A  $ROOT_IP
HINTS
unbound_hints_conf "$W" "$UNBOUND_PORT" "$W/root.hints"

(cd "$ROOT" && go build -o "$W/dnsresd" ./bench/dns/dnsresd && go build -o "$W/respdiff" ./bench/dns/respdiff)

awk -v seed="$RANDOM$RANDOM" 'BEGIN { srand(seed); for (i = 0; i < 3000000; i++) printf "r%d-%d.miss.bench.test A\n", int(rand() * 1e9), i }' >"$W/miss.txt"
{
	awk 'BEGIN { for (i = 0; i < 10000; i++) printf "h%05d.bench.test A\n", i }'
	awk 'BEGIN { for (i = 0; i < 1000; i++) printf "h%05d.bench.test AAAA\n", i * 10 }'
	awk 'BEGIN { for (i = 0; i < 1000; i++) printf "nx%05d.bench.test A\n", i }'
	awk 'BEGIN { for (i = 0; i < 1000; i++) printf "w%05d.miss.bench.test A\n", i }'
	printf '%s\n' "bench.test SOA" "bench.test NS" "bench.test MX" "bench.test TXT" "ns1.bench.test A" "miss.bench.test A" "H00001.Bench.Test A"
} >"$W/diff.txt"

wait_answer() { # ip port → waits until h00001.bench.test resolves there
	for _ in $(seq 100); do
		if [ -n "$(dig +short +time=1 +tries=1 -p "$2" @"$1" h00001.bench.test A 2>/dev/null)" ]; then return 0; fi
		sleep 0.1
	done
	echo "$1:$2 did not answer h00001.bench.test" >&2
	return 1
}
for _ in $(seq 100); do
	dig +short +norec +time=1 +tries=1 @$ROOT_IP . SOA >/dev/null 2>&1 && break
	sleep 0.1
done
wait_answer $LEAF_IP 53

declare -A PID
start() { # unbound|ours
	case $1 in
	unbound) unbound -d -c "$W/unbound.conf" >"$W/unbound.log" 2>&1 & ;;
	ours) "$W/dnsresd" -listen 127.0.0.1:$OURS_PORT -root $ROOT_IP -sink "$SINK" -store-dir "$W/events" ${DNSRESD_FLAGS:-} >>"$W/ours.log" 2>&1 & ;;
	esac
	PID[$1]=$!
	PIDS+=("${PID[$1]}")
	wait_answer 127.0.0.1 "$(port "$1")"
}
stop() {
	kill "${PID[$1]}" 2>/dev/null || true
	wait "${PID[$1]}" 2>/dev/null || true
	rm -rf "$W/events"
}
port() { if [ "$1" = unbound ]; then echo $UNBOUND_PORT; else echo $OURS_PORT; fi; }
perf() { # port file extra-args... → "qps lost avg_ms"
	local p=$1 f=$2
	shift 2
	dnsperf -s 127.0.0.1 -p "$p" -d "$f" -c 32 -q 100 -t 2 "$@" >"$W/perf.out" 2>&1 || true
	awk '/Queries per second:/ { q = $4 } /Queries lost:/ { l = $3 } /Average Latency/ { a = $4 * 1000 } END { printf "%.0f %s %.3f\n", q, l, a }' "$W/perf.out"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
leafq() { # our recursor's counters, one line per server started
	grep -h "dnsresd: recursor" "$W/ours.log"
}

declare -A RES
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$RUNS"); do
	for srv in unbound ours; do
		start $srv
		out=$(perf "$(port $srv)" "$W/miss.txt" -n 1 -l "$SECS")
		echo "$srv miss (recursion) run $r: qps lost avg_ms = $out"
		RES[$srv]+="${out%% *}"$'\n'
		stop $srv
	done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== respdiff through the hierarchy: Unbound (a) vs dnsres (b), $(wc -l <"$W/diff.txt") questions =="
start unbound
start ours
"$W/respdiff" -a 127.0.0.1:$UNBOUND_PORT -b 127.0.0.1:$OURS_PORT -q "$W/diff.txt" | tee "$W/respdiff.out" | tail -20
stop unbound
stop ours

echo
echo "== cache misses through root → TLD → leaf, medians of $RUNS runs, ${SECS}s each (dnsperf -c 32 -q 100 -t 2; our query log: $SINK) =="
u=$(printf '%s' "${RES[unbound]}" | median)
o=$(printf '%s' "${RES[ours]}" | median)
echo "miss (recursion): unbound $u qps, dnsres $o qps, ratio $(awk -v o="$o" -v u="$u" 'BEGIN { printf "%.2f", o / u }')"
grep -m1 '^respdiff:' "$W/respdiff.out" 2>/dev/null || true
leafq || true
