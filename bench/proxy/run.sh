#!/bin/sh
# Side-by-side forward-proxy benchmark of /work/shared/BENCH.md "Forward
# proxy", reproducing the figures of proxy/README.md:
#
#   origin  nginx on 127.0.0.1:18080, one worker, access log off,
#           keep-alive, /1k (1,024 random bytes) and /1m (1,048,576)
#   peers   Squid, `cache deny all`, access log on (one process on :13129,
#           `workers 2` on :13130), seccloud proxy.Server on :13128 with
#           the access log on (detect.Async into detect/store), and wrk
#           straight to nginx as the baseline
#   load    wrk -t 2, proxy-form request line from a Lua script,
#           64 connections for /1k (req/s), 16 for /1m (Gbit/s)
#
# Every target is measured RUNS times (default 3) for DURATION (default
# 20s), the targets interleaved round by round so that drift hits them all
# alike; medians and ratios are printed at the end. The client address
# (127.0.0.1) belongs to the bench tenant of the seccloud proxy.
# For ours it also reads the proxy process's CPU time (utime + stime in
# /proc/PID/stat) around each run and prints the 1 MiB Gbit/s per core
# and the cores 4 Gbit/s needs.
#
#   bench/proxy/run.sh                 # about 9 minutes
#   RUNS=1 DURATION=5s bench/proxy/run.sh   # a quick look
#   PROFILE=1 bench/proxy/run.sh       # also writes a CPU profile of ours
#
# Needs root for apt-get (nginx-light, squid, wrk) when they are missing.
# Raw wrk output goes to $OUT (default /tmp/proxy-bench.txt).
set -eu
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
RUNS=${RUNS:-3}
DURATION=${DURATION:-20s}
OUT=${OUT:-/tmp/proxy-bench.txt}

. bench/lib/peers.sh
need=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx-light"
command -v squid >/dev/null 2>&1 || [ -x /usr/sbin/squid ] || need="$need squid"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
bench_install $need
PATH=$PATH:/usr/sbin

W=$(mktemp -d /tmp/proxy-bench.XXXXXX)
chmod 755 "$W"
mkdir -p "$W/www" "$W/events"
head -c 1024 /dev/urandom > "$W/www/1k"
head -c 1048576 /dev/urandom > "$W/www/1m"
chmod 644 "$W/www/1k" "$W/www/1m"

# cpu TARGET: CPU ticks (utime + stime) the proxy process used so far;
# measured for ours only (Squid runs as a master and kids).
cpu() {
	if [ "$1" = ours ] && [ -f "$W/ours.pid" ]; then
		awk '{ print $14 + $15 }' "/proc/$(cat "$W/ours.pid")/stat"
	else
		echo 0
	fi
}

cleanup() {
	[ -f "$W/ours.pid" ] && kill "$(cat "$W/ours.pid")" 2>/dev/null || true
	for n in sq1 sq2; do squid -n "$n" -f "$W/$n.conf" -k shutdown 2>/dev/null || true; done
	[ -f "$W/origin.pid" ] && kill "$(cat "$W/origin.pid")" 2>/dev/null || true
	sleep 2
	[ -f "$W/ours.pid" ] && wait "$(cat "$W/ours.pid")" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

nginx_origin "$W" 18080
for n in 1 2; do
	squid_conf "$W" "sq$n" $((13128 + n)) $n
	squid -n "sq$n" -f "$W/sq$n.conf"
done

go build -o "$W/seccloud-proxy" ./bench/proxy/seccloud-proxy
prof=""
[ "${PROFILE:-}" = 1 ] && prof="-cpuprofile $W/ours.cpu"
"$W/seccloud-proxy" -listen 127.0.0.1:13128 -data "$W/events" $prof 2> "$W/ours.log" &
echo $! > "$W/ours.pid"

waitport() {
	i=0
	until curl -s -o /dev/null -x "http://127.0.0.1:$1" http://127.0.0.1:18080/1k; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "port $1 never answered" >&2; exit 1; }
		sleep 0.2
	done
}
until curl -s -o /dev/null http://127.0.0.1:18080/1k; do sleep 0.2; done
for p in 13128 13129 13130; do waitport $p; done

for obj in 1k 1m; do
	cat > "$W/$obj.lua" <<LUA
wrk.path = "http://127.0.0.1:18080/$obj"
wrk.headers["Host"] = "127.0.0.1:18080"
LUA
done

# run TARGET OBJ CONNS DURATION: one wrk run, raw output appended to $OUT,
# "TARGET OBJ req/s bytes/s" appended to $W/results.
run() {
	case $1 in
	direct) url=http://127.0.0.1:18080/$2; script="" ;;
	squid1) url=http://127.0.0.1:13129; script="-s $W/$2.lua" ;;
	squid2) url=http://127.0.0.1:13130; script="-s $W/$2.lua" ;;
	ours) url=http://127.0.0.1:13128; script="-s $W/$2.lua" ;;
	esac
	local c0 t0 c1 t1
	c0=$(cpu "$1")
	t0=$(date +%s.%N)
	wrk -t 2 -c "$3" -d "$4" $script "$url" > "$W/wrk.txt" 2>&1 || true
	t1=$(date +%s.%N)
	c1=$(cpu "$1")
	{ echo "== $1 $2 c=$3 $4 (load $(cut -d' ' -f1 /proc/loadavg))"; cat "$W/wrk.txt"; } >> "$OUT"
	if grep -q -E "Non-2xx|Socket errors" "$W/wrk.txt"; then
		echo "warning: $1 $2: $(grep -E 'Non-2xx|Socket errors' "$W/wrk.txt")" >&2
	fi
	awk -v t="$1" -v o="$2" -v cores="$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN { print (b - a) / hz / (e - s) }')" '
		/^Requests\/sec:/ { rps = $2 }
		/^Transfer\/sec:/ {
			v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v)
			m = 1; if (u == "KB") m = 1024; if (u == "MB") m = 1048576; if (u == "GB") m = 1073741824
			bps = v * m
		}
		END { printf "%s %s %s %s %s\n", t, o, rps, bps, cores }' "$W/wrk.txt" >> "$W/results"
}

: > "$OUT"
: > "$W/results"
echo "warming up"
for t in direct squid1 squid2 ours; do run $t 1k 64 3s; done
: > "$W/results"
for spec in "1k 64" "1m 16"; do
	set -- $spec
	r=1
	while [ $r -le "$RUNS" ]; do
		for t in direct squid1 squid2 ours; do
			echo "run $r/$RUNS: $t /$1 c=$2 $DURATION"
			run $t "$1" "$2" "$DURATION"
		done
		r=$((r + 1))
	done
done

echo
echo "== medians of $RUNS runs of $DURATION, wrk -t 2 (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
awk '
function median(a, n,    i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ k = $1 SUBSEP $2; n[k]++; rps[k, n[k]] = $3; bps[k, n[k]] = $4; gpc[k, n[k]] = $5 > 0 ? $4 * 8 / 1e9 / $5 : 0; cor[k, n[k]] = $5 }
END {
	split("direct squid1 squid2 ours", ts, " ")
	for (i = 1; i <= 4; i++) {
		k = ts[i] SUBSEP "1k"; for (j = 1; j <= n[k]; j++) x[j] = rps[k, j]; m1[ts[i]] = median(x, n[k])
		k = ts[i] SUBSEP "1m"; for (j = 1; j <= n[k]; j++) x[j] = bps[k, j]; m2[ts[i]] = median(x, n[k]) * 8 / 1e9
	}
	printf "%-8s %14s %14s\n", "target", "1k req/s", "1m Gbit/s"
	for (i = 1; i <= 4; i++) printf "%-8s %14.0f %14.2f\n", ts[i], m1[ts[i]], m2[ts[i]]
	printf "ours / squid (one process): 1k %.2fx   1m %.2fx\n", m1["ours"] / m1["squid1"], m2["ours"] / m2["squid1"]
	printf "ours / squid (workers 2):   1k %.2fx   1m %.2fx\n", m1["ours"] / m1["squid2"], m2["ours"] / m2["squid2"]
	k = "ours" SUBSEP "1m"; for (j = 1; j <= n[k]; j++) x[j] = gpc[k, j]; g = median(x, n[k])
	for (j = 1; j <= n[k]; j++) x[j] = cor[k, j]; c = median(x, n[k])
	if (g > 0) printf "ours 1m: %.2f cores busy (utime+stime of the proxy process / wall time), %.2f Gbit/s per core: 4 Gbit/s needs %.1f cores\n", c, g, 4 / g
}' "$W/results"
kill "$(cat "$W/ours.pid")"
wait "$(cat "$W/ours.pid")" 2>/dev/null || true
rm -f "$W/ours.pid"
grep events: "$W/ours.log" || true
[ "${PROFILE:-}" = 1 ] && echo "CPU profile: $W/ours.cpu (go tool pprof -top $W/seccloud-proxy $W/ours.cpu)"
echo "work dir: $W"
