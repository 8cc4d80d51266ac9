#!/bin/sh
# Layer-7 flood (issue 7): 50 addresses (127.0.3.1-50) flood a disaster
# site's uncached search as fast as they can while 20 normal clients
# (127.0.1.1-20) browse at a human pace (one request a second, half of
# them to cached pages), through waf.Server with the CDN cache and the
# layer-7 limits on (per client 5 requests/s, burst 10, in this scenario;
# adaptive protection with its defaults).
# Runs the test TestFloodNormalClientsServed RUNS times (3) with a flood
# of FLOOD_SECONDS (20) and prints, per run, the normal clients' success
# rate and p95 latency and how much of the flood was refused.
#
#   bash bench/waf/flood.sh
#   RUNS=1 FLOOD_SECONDS=5 bash bench/waf/flood.sh
set -eu
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
export FLOOD_SECONDS=${FLOOD_SECONDS:-20}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$RUNS"); do
	go test -count=1 -run '^TestFloodNormalClientsServed$' -v ./waf/ | grep 'normal clients:' | sed "s/^ */run $r: /"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
