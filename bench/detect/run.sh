#!/bin/sh
# Reproduces the figures of detect/*/README.md (no peer: the issue's goals
# are absolute — rule engine >= 500,000 events/s per core with the default
# set, a month's report with 60 M events <= 5 s). Every benchmark 3 times,
# then the median of each metric.
#
#   bash bench/detect/run.sh          # all (the 60 M-event rollups take ~1 min to build)
#   bash bench/detect/run.sh quick    # 3 M events for the report benchmark
#
# Raw output goes to ${OUT:-/tmp/detect-bench.txt}.
set -eu
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/detect-bench.txt}
: > "$OUT"
if [ "${1:-}" = quick ]; then
	export SECCLOUD_REPORT_EVENTS=3000000
fi
go test -run '^$' -count 3 -benchtime 1s -bench '^(BenchmarkIngestDefault|BenchmarkIngestDefaultParallel|BenchmarkIngest1000)$' ./detect/rules/ | tee -a "$OUT"
go test -run '^$' -count 3 -benchtime 3x -bench '^BenchmarkMonthlyReport60M$' ./detect/report/ 2>&1 | tee -a "$OUT"
go test -run '^$' -count 3 -benchtime 200000x -bench '^BenchmarkRollupWrite$' ./detect/report/ | tee -a "$OUT"
go test -run '^$' -count 3 -benchtime 1s -bench . ./detect/beacon/ ./detect/ingest/ ./detect/judge/ ./detect/incident/ | tee -a "$OUT"
echo
echo "== medians (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
awk '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
	for (i = 3; i < NF; i += 2) {
		key = name SUBSEP $(i+1)
		if (!(key in cnt)) units[name] = units[name] " " $(i+1)
		v[key, ++cnt[key]] = $i
	}
}
END {
	for (k = 1; k <= n; k++) {
		name = order[k]; line = name
		m = split(units[name], us, " ")
		for (j = 1; j <= m; j++) {
			key = name SUBSEP us[j]; c = cnt[key]
			for (a = 1; a <= c; a++) x[a] = v[key, a] + 0
			for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
			line = line sprintf("  %g %s", x[int((c + 1) / 2)], us[j])
		}
		print line
	}
}' "$OUT"
