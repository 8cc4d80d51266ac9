#!/usr/bin/env bash
# Appliance figures of issue #9: startup to ready with 100 tenants, 1,000
# DNS zones and 200 sites; RSS at idle; and reloads of that config under a
# DNS load (dnsperf) with the number of failed queries.
#
#   bash bench/appliance/startup.sh            # 3 runs (about 1 minute)
#   RUNS=5 bash bench/appliance/startup.sh
#
# Loopback only. Installs dnsperf from Debian when missing (needs root).
set -euo pipefail
RUNS=${RUNS:-3}
RELOADS=${RELOADS:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=$(mktemp -d /tmp/appbench.XXXXXX)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
if ! command -v dnsperf >/dev/null; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf >/dev/null
fi
CONSOLE=127.0.0.1:19090
DNS_PORT=15356
(cd "$ROOT" && go build -o "$W/seccloud" ./appliance/cmd/seccloud && go run ./bench/appliance/gen -dir "$W/cfg" \
	-tenants 100 -zones 10 -sites 2 -console $CONSOLE -dns 127.0.0.1:$DNS_PORT)
echo "config: 100 tenants, 1,000 zones (20 A records each), 200 sites (2 origins each)"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

start() {
	rm -rf "$W/cfg/data/events" "$W/cfg/data/incidents" "$W/cfg/data/config-history"
	local s e
	s=$(date +%s%N)
	(cd "$W/cfg" && exec "$W/seccloud" run -config config.yaml >>"$W/log" 2>&1) &
	PID=$!
	until curl -sf -o /dev/null "http://$CONSOLE/readyz"; do
		kill -0 "$PID" 2>/dev/null || { echo "appliance died:"; tail -20 "$W/log"; exit 1; }
		sleep 0.01
	done
	e=$(date +%s%N)
	MS=$(((e - s) / 1000000))
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

ready=() rss=()
for i in $(seq "$RUNS"); do
	start
	ms=$MS
	sleep 3
	r=$(awk '/VmRSS/ {print $2}' "/proc/$PID/status")
	ready+=("$ms") rss+=("$r")
	echo "run $i: ready in $ms ms, idle RSS $((r / 1024)) MiB"
	stop
done
echo "startup to ready: median $(printf '%s\n' "${ready[@]}" | median) ms of $RUNS runs"
echo "idle RSS: median $(($(printf '%s\n' "${rss[@]}" | median) / 1024)) MiB"

# Reloads under load: dnsperf asks zone names of every tenant from the
# tenants' own addresses while the config is reloaded RELOADS times.
start
for t in $(seq 1 100); do for z in 0 3 7; do
	printf 'h%03d.z%02d.t%03d.example.jp A\n' $((t % 20)) $z $t
done; done >"$W/queries"
dnsperf -s 127.0.0.1 -p $DNS_PORT -a 127.0.1.5 -d "$W/queries" -l 12 -c 8 -q 50 -t 2 >"$W/perf.txt" 2>&1 &
PERF=$!
sleep 2
ok=0
for i in $(seq "$RELOADS"); do
	# a real change each time: the reload must swap the tenant directory
	sed -i "s/^    name: 団体001.*/    name: 団体001-r$i/" "$W/cfg/config.yaml"
	if curl -sf -X POST "http://$CONSOLE/-/reload" -o /dev/null; then ok=$((ok + 1)); fi
	sleep 1.5
done
wait $PERF || true
stop
echo "reloads applied under load: $ok of $RELOADS"
grep -E "Queries sent|Queries completed|Queries lost|Response codes|Queries per second" "$W/perf.txt" | sed 's/^ */  /'
