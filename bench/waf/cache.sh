#!/bin/sh
# Cache-hit throughput of the WAF (issue 7 goal: >= 20,000 req/s for a
# popular page with request inspection on). One run measures, interleaved
# round by round:
#
#   ours      waf.Server, default engine (CRS v4 on Coraza + our layer),
#             CDN cache on, events stored (bench/waf/seccloud-waf)  :18191
#   no-insp   the same without inspection (-engine none)             :18192
#
# in front of bench/waf/cacheorigin (:18190, 1 KiB /index.html with
# Cache-Control: max-age=300), so every request after the first is a
# cache hit. Load: wrk -t 2 -c 64, Host app.bench.test, GET /index.html.
# Prints the medians of RUNS (3) runs of DURATION (20s) and how many
# requests reached the origin.
#
#   bash bench/waf/cache.sh
#   RUNS=1 DURATION=5s bash bench/waf/cache.sh   # a quick look
set -eu
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-20s}
OUT=${OUT:-/tmp/waf-cache-bench.txt}
command -v wrk >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk
W=$(mktemp -d /tmp/waf-cache.XXXXXX)
go build -o "$W/origin" ./bench/waf/cacheorigin
go build -o "$W/waf" ./bench/waf/seccloud-waf
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
"$W/origin" -listen 127.0.0.1:18190 & pids="$pids $!"
mkdir -p "$W/ev1" "$W/ev2"
"$W/waf" -listen 127.0.0.1:18191 -origin 127.0.0.1:18190 -data "$W/ev1" & pids="$pids $!"
"$W/waf" -listen 127.0.0.1:18192 -origin 127.0.0.1:18190 -data "$W/ev2" -engine none & pids="$pids $!"
for port in 18190 18191 18192; do
	for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
done
for port in 18191 18192; do
	curl -s -o /dev/null -H 'Host: app.bench.test' "http://127.0.0.1:$port/index.html"
	echo "$port: $(curl -s -D - -o /dev/null -H 'Host: app.bench.test' "http://127.0.0.1:$port/index.html" | grep -i '^cache-status' | tr -d '\r')"
done
: > "$OUT"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
for r in $(seq "$RUNS"); do
	for t in ours:18191 no-insp:18192; do
		name=${t%%:*}; port=${t##*:}
		rps=$(wrk -t 2 -c 64 -d "$DURATION" -H 'Host: app.bench.test' \
			-H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0' -H 'Accept: */*' \
			"http://127.0.0.1:$port/index.html" | tee -a "$OUT" | awk '/Requests\/sec/ {print $2}')
		echo "run $r $name $rps" | tee -a "$OUT"
	done
done
echo "origin requests: $(curl -s http://127.0.0.1:18190/hits)"
for name in ours no-insp; do
	med=$(awk -v n="$name" '$1=="run" && $3==n {print $4}' "$OUT" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "median $name: $med req/s"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
