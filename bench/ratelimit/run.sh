#!/bin/sh
# Reproduces the figures of ratelimit/README.md: every benchmark 3 times,
# then the median of each metric and the side-by-side ratios.
#
#   bench/ratelimit/run.sh            # all (about 6 minutes; needs redis-server)
#   bench/ratelimit/run.sh quick      # without the 2 x 10 s x 3 shaping runs
#
# Raw output goes to ${OUT:-/tmp/ratelimit-bench.txt}.
set -eu
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ratelimit-bench.txt}
: > "$OUT"
go test -run '^$' -count 3 -benchtime 1s \
	-bench '^(BenchmarkAllow|BenchmarkAllowN|BenchmarkClock|BenchmarkSideBySide|BenchmarkKeyedAllowSmall|BenchmarkConcurrencyAcquireRelease|BenchmarkFairWaitN|BenchmarkMemoryStoreTake|BenchmarkRedisStore)$' \
	./ratelimit/ | tee -a "$OUT"
if [ "${1:-}" != quick ]; then
	# Each run transfers for 10 s whatever b.N is.
	go test -run '^$' -count 3 -benchtime 1x -bench '^BenchmarkShapeLoopback$' ./ratelimit/ | tee -a "$OUT"
fi
echo
echo "== medians of $(grep -c '^Benchmark' "$OUT") runs (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
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
function median(key,   k, i, j, t, a) {
	k = cnt[key]
	for (i = 1; i <= k; i++) a[i] = v[key, i]
	for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
	for (x = 1; x <= n; x++) {
		name = order[x]; line = sprintf("%-52s", name)
		split(substr(units[name], 2), us, " ")
		for (u in us) {}
		for (i = 1; (i in us); i++) {
			m = median(name SUBSEP us[i]); med[name, us[i]] = m
			line = line sprintf("  %12.6g %s", m, us[i])
		}
		print line
	}
	print ""
	print "== ratios (other / seccloud, ns/op; above 1 means seccloud is faster)"
	p = "BenchmarkSideBySide/"
	split("single/xrate:single/seccloud parallel/xrate:parallel/seccloud keyed1M/xrate-mutexmap:keyed1M/seccloud keyed1M/xrate-golang-lru:keyed1M/seccloud", pairs, " ")
	for (i = 1; (i in pairs); i++) {
		split(pairs[i], ab, ":")
		a = med[p ab[1], "ns/op"]; b = med[p ab[2], "ns/op"]
		if (a != "" && b > 0) printf "%-28s %6.2fx\n", ab[1], a / b
	}
}' "$OUT"
