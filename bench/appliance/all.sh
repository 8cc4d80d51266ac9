#!/usr/bin/env bash
# All four functions under load at once (issue #9 figure): the same four
# loads run together, for the same time, first against the Debian peers
# running side by side (Squid + Unbound + nginx/ModSecurity/CRS + Postfix),
# then against one seccloud appliance with proxy, DNS, WAF and mail on.
#
#   origin  nginx on 127.0.0.1:18280 (one worker): /1k (1,024 bytes) for
#           the proxy load, /index.html (a small page) behind the WAFs
#   DNS     NSD on 127.0.0.1:15363 serving bench.test (10,000 names), the
#           resolvers forward bench.test to it
#   mail    smtp-sink on 127.0.0.1:12536 (-c running counter), the relays'
#           next hop
#   loads   proxy  wrk -t 1 -c 32, absolute-URI GET of /1k
#           dns    dnsperf -c 16 -q 50 -t 2 over the 10,000 cached names
#           waf    wrk -t 1 -c 32, benign GETs whose query changes on
#                  every request (ids, dates, Japanese words)
#           mail   smtp-source -s 10, ~10 KiB messages, as many as fit;
#                  counted as DATA commands completed at the sink in the
#                  window
#   peers   Squid (one process, access log on), Unbound (2 threads),
#           nginx + ModSecurity v3 + CRS (2 workers), Postfix (queue on
#           disk, relayhost = the sink)
#   ours    `seccloud run` with the four listeners, one tenant owning
#           127.0.0.0/8, events stored, WAF layer-7 limits and DNS RRL off
#           (every load comes from 127.0.0.1, which would otherwise be
#           throttled as one client)
#
# RUNS rounds (default 3) of DURATION seconds (default 20) each, peers and
# ours alternating; medians per function and the ratios are printed, and
# the peers' CPU time per daemon so each function's share is visible.
#
#   bash bench/appliance/all.sh             # about 4 minutes
#   RUNS=1 DURATION=5 bash bench/appliance/all.sh
#   SPLIT=1 bash bench/appliance/all.sh     # the resolver in its own process
#
# Loopback only. Needs root for apt-get when the tools are missing.
set -euo pipefail
RUNS=${RUNS:-3}
DURATION=${DURATION:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PATH=$PATH:/usr/sbin
W=$(mktemp -d /tmp/allbench.XXXXXX)
chmod 755 "$W"

. "$ROOT/bench/lib/peers.sh"
need=()
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] || need+=(libnginx-mod-http-modsecurity)
[ -d /usr/share/modsecurity-crs ] || need+=(modsecurity-crs)
command -v squid >/dev/null || need+=(squid)
command -v unbound >/dev/null || need+=(unbound)
command -v nsd >/dev/null || need+=(nsd)
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v dig >/dev/null || need+=(dnsutils)
command -v smtp-source >/dev/null && command -v postfix >/dev/null || need+=(postfix)
bench_install "${need[@]}"

PIDS=()
cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	squid -n allsq -f "$W/allsq.conf" -k shutdown 2>/dev/null
	for n in origin modsec; do [ -f "$W/$n.pid" ] && kill "$(cat "$W/$n.pid")" 2>/dev/null; done
	postfix -c "$W/pf/etc" stop >/dev/null 2>&1
	sleep 1
	wait 2>/dev/null
}
trap cleanup EXIT INT TERM

# --- origin -----------------------------------------------------------------
mkdir -p "$W/www"
head -c 1024 /dev/urandom >"$W/www/1k"
printf '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><title>防災情報</title></head><body><h1>防災情報</h1><p>%s</p></body></html>\n' \
	"$(head -c 600 /dev/zero | tr '\0' 'x')" >"$W/www/index.html"
chmod 644 "$W/www/"*
nginx_origin "$W" 18280

# --- authoritative DNS ------------------------------------------------------
bench_zone "$W/bench.test.zone"
nsd_conf "$W" 15363
nsd -d -c "$W/nsd.conf" &
PIDS+=($!)
awk 'BEGIN { for (i = 0; i < 10000; i++) printf "h%05d.bench.test A\n", i }' >"$W/dns.txt"

# --- the sink and the loads' scripts ----------------------------------------
smtp-sink -u nobody -c 127.0.0.1:12536 1024 >"$W/sink.out" 2>&1 &
PIDS+=($!)
cat >"$W/proxy.lua" <<'LUA'
wrk.path = "http://127.0.0.1:18280/1k"
wrk.headers["Host"] = "127.0.0.1:18280"
LUA
waf_varied_lua "$W/waf.lua"

# --- peers: Squid, Unbound, nginx + ModSecurity + CRS, Postfix ----------------
squid_conf "$W" allsq 13139 1
unbound_conf "$W" 15364 15363
modsec_conf "$W" 18281 18280
postfix_instance "$W/pf" 12535 12536 "initial_destination_concurrency = 20"

# --- ours -----------------------------------------------------------------------
(cd "$ROOT" && go build -o "$W/seccloud" ./appliance/cmd/seccloud)
mkdir -p "$W/ours"
cat >"$W/ours/config.yaml" <<YAML
version: 1
data_dir: $W/ours/data
log: {level: warn}
listen:
  console: 127.0.0.1:19190
  proxy: 127.0.0.1:13138
  dns: 127.0.0.1:15365
  waf_http: 127.0.0.1:18283
  smtp: 127.0.0.1:12537
proxy:
  allow_loopback_destinations: true
dns:
  upstreams: [127.0.0.1:15363]
  rrl: {response_rate: -1}
mail:
  hostname: relay.bench.test
  smarthost: 127.0.0.1:12536
waf:
  ddos: {disabled: true}
tenants:
  - id: bench
    name: ベンチ市
    networks: [127.0.0.0/8]
    egress_addr: 127.0.0.1
    mail_domains: [client.bench.test]
    sites:
      - host: app.bench.test
        origins: [127.0.0.1:18280]
YAML

# SPLIT=1: the resolver runs as its own `seccloud run` process (the same
# config with functions.dns only, its own data_dir and console port) and
# the first one keeps proxy, WAF and mail (functions.dns false): the
# deployment the README suggests for heavy mixed load, where a DNS query
# should not wait behind busy HTTP goroutines in one Go scheduler.
if [ "${SPLIT:-0}" = 1 ]; then
	sed -e "s#data_dir: $W/ours/data#data_dir: $W/ours/data-dns#" \
		-e 's#console: 127.0.0.1:19190#console: 127.0.0.1:19191#' \
		-e '/^  proxy: 127/d' -e '/^  waf_http:/d' -e '/^  smtp:/d' \
		"$W/ours/config.yaml" >"$W/ours/config-dns.yaml"
	printf 'functions: {proxy: false, mail: false, waf: false}\n' >>"$W/ours/config-dns.yaml"
	sed -i -e '/^  dns: 127/d' "$W/ours/config.yaml"
	printf 'functions: {dns: false}\n' >>"$W/ours/config.yaml"
fi

wait_tcp() { # port
	for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
	echo "nothing listens on port $1" >&2
	return 1
}
wait_dns() { # port
	for _ in $(seq 100); do dig +short +time=1 +tries=1 -p "$1" @127.0.0.1 h00001.bench.test A | grep -q 198.18 && return 0; sleep 0.1; done
	echo "resolver on port $1 did not answer" >&2
	return 1
}

declare -A OURPID
start_peers() {
	squid -n allsq -f "$W/allsq.conf"
	unbound -d -c "$W/unbound.conf" >"$W/unbound.log" 2>&1 &
	OURPID[unbound]=$!
	nginx -c "$W/modsec.conf"
	postfix -c "$W/pf/etc" start >/dev/null 2>&1
	wait_tcp 13139
	wait_dns 15364
	wait_tcp 18281
	wait_tcp 12535
}
stop_peers() {
	squid -n allsq -f "$W/allsq.conf" -k shutdown 2>/dev/null || true
	kill "${OURPID[unbound]}" 2>/dev/null || true
	wait "${OURPID[unbound]}" 2>/dev/null || true
	kill "$(cat "$W/modsec.pid")" 2>/dev/null || true
	postfix -c "$W/pf/etc" stop >/dev/null 2>&1 || true
	sleep 2
}
start_ours() {
	rm -rf "$W/ours/data" "$W/ours/data-dns"
	(cd "$W/ours" && exec "$W/seccloud" run -config config.yaml >"$W/ours.log" 2>&1) &
	OURPID[ours]=$!
	until curl -sf -o /dev/null http://127.0.0.1:19190/readyz; do
		kill -0 "${OURPID[ours]}" 2>/dev/null || { echo "seccloud died:"; tail -20 "$W/ours.log"; exit 1; }
		sleep 0.1
	done
	if [ "${SPLIT:-0}" = 1 ]; then
		(cd "$W/ours" && exec "$W/seccloud" run -config config-dns.yaml >"$W/ours-dns.log" 2>&1) &
		OURPID[ours-dns]=$!
		until curl -sf -o /dev/null http://127.0.0.1:19191/readyz; do
			kill -0 "${OURPID[ours-dns]}" 2>/dev/null || { echo "seccloud (dns) died:"; tail -20 "$W/ours-dns.log"; exit 1; }
			sleep 0.1
		done
	fi
	wait_dns 15365
}
stop_ours() {
	for k in ours ours-dns; do
		[ -n "${OURPID[$k]:-}" ] || continue
		kill "${OURPID[$k]}" 2>/dev/null || true
		wait "${OURPID[$k]}" 2>/dev/null || true
	done
}

# tree PIDFILE: clock ticks of user+system time of a daemon's master
# process, of its children it has reaped, and of its children alive now.
tree() {
	local m
	m=$(head -1 "$1" 2>/dev/null | tr -d ' ') || true
	[ -n "$m" ] && [ -r "/proc/$m/stat" ] || { echo 0; return; }
	{
		awk '{ print $14 + $15 + $16 + $17 }' "/proc/$m/stat"
		for c in $(pgrep -P "$m"); do awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null; done
	} | awk '{ s += $1 } END { print s + 0 }'
}
sinkcount() { tr '\r' '\n' <"$W/sink.out" | awk -F'mesg=' 'NF > 1 { v = $2 } END { print v + 0 }'; }

# load SET PROXYPORT DNSPORT WAFPORT SMTPPORT: the four loads at once for
# DURATION; appends "SET proxy/dns/waf/mail value" lines to $W/results.
load() {
	local set=$1 pp=$2 dp=$3 wp=$4 sp=$5
	dnsperf -s 127.0.0.1 -p "$dp" -d "$W/dns.txt" -n 1 -c 16 -q 50 -t 2 >/dev/null 2>&1 || true # warm the cache
	local m0 c0=() names=(squid unbound modsec postfix) pf=("$W/allsq/squid.pid" "$W/unbound.pid" "$W/modsec.pid" "$W/pf/spool/pid/master.pid")
	if [ "$set" = peers ]; then for i in 0 1 2 3; do c0[$i]=$(tree "${pf[$i]}"); done; fi
	smtp-source -4 -s 10 -m 10000000 -l 10240 -M relay.bench.test -f sender@client.bench.test -t rcpt@dest.example.net 127.0.0.1:"$sp" >/dev/null 2>&1 &
	local src=$!
	sleep 1
	m0=$(sinkcount)
	wrk -t 1 -c 32 -d "${DURATION}s" -s "$W/proxy.lua" "http://127.0.0.1:$pp" >"$W/wrk-$set-proxy.txt" 2>&1 &
	local wp1=$!
	wrk -t 1 -c 32 -d "${DURATION}s" -s "$W/waf.lua" "http://127.0.0.1:$wp/index.html" >"$W/wrk-$set-waf.txt" 2>&1 &
	local wp2=$!
	dnsperf -s 127.0.0.1 -p "$dp" -d "$W/dns.txt" -c 16 -q 50 -t 2 -l "$DURATION" >"$W/perf-$set.txt" 2>&1 &
	local dp1=$!
	sleep "$DURATION"
	local m1
	m1=$(sinkcount)
	wait $wp1 $wp2 $dp1 || true
	kill $src 2>/dev/null || true
	wait $src 2>/dev/null || true
	local p d f
	p=$(awk '/^Requests\/sec:/ { print $2 }' "$W/wrk-$set-proxy.txt")
	f=$(awk '/^Requests\/sec:/ { print $2 }' "$W/wrk-$set-waf.txt")
	d=$(awk '/Queries per second:/ { print $4 }' "$W/perf-$set.txt")
	for t in proxy waf; do
		grep -E "Non-2xx|Socket errors" "$W/wrk-$set-$t.txt" | sed "s/^/warning: $set $t: /" >&2 || true
	done
	{
		echo "$set proxy ${p:-0}"
		echo "$set dns ${d:-0}"
		echo "$set waf ${f:-0}"
		echo "$set mail $(awk -v a="$m0" -v b="$m1" -v t="$DURATION" 'BEGIN { printf "%.1f", (b - a) / t }')"
	} | tee -a "$W/results"
	if [ "$set" = peers ]; then
		for i in 0 1 2 3; do
			echo "$set cpu-${names[$i]} $(awk -v a="${c0[$i]}" -v b="$(tree "${pf[$i]}")" -v hz="$(getconf CLK_TCK)" -v t="$DURATION" 'BEGIN { printf "%.0f", (b - a) / hz / t * 100 }')"
		done | tee -a "$W/results"
	fi
	# let the relays drain their queues before the next round
	sleep 5
}

: >"$W/results"
for r in $(seq "$RUNS"); do
	echo "== round $r/$RUNS: peers (load $(cut -d' ' -f1 /proc/loadavg))"
	start_peers
	load peers 13139 15364 18281 12535
	stop_peers
	echo "== round $r/$RUNS: seccloud (load $(cut -d' ' -f1 /proc/loadavg))"
	start_ours
	load ours 13138 15365 18283 12537
	stop_ours
done

echo
echo "== medians of $RUNS rounds, ${DURATION}s each, all four loads at once (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
awk '
function median(a, n,    i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ k = $1 SUBSEP $2; n[k]++; v[k, n[k]] = $3 }
END {
	split("proxy dns waf mail", fs, " ")
	split("req/s qps req/s msg/s", us, " ")
	printf "%-6s %14s %14s %8s\n", "func", "peers", "seccloud", "ratio"
	for (i = 1; i <= 4; i++) {
		for (s = 0; s < 2; s++) {
			set = s ? "ours" : "peers"; k = set SUBSEP fs[i]
			for (x = 1; x <= n[k]; x++) y[x] = v[k, x]
			m[set] = median(y, n[k])
		}
		printf "%-6s %10.0f %-5s %8.0f %-5s %6.2fx\n", fs[i], m["peers"], us[i], m["ours"], us[i], m["peers"] ? m["ours"] / m["peers"] : 0
	}
	printf "peers CPU %% of one core (median):"
	split("squid unbound modsec postfix", ps, " ")
	for (i = 1; i <= 4; i++) { k = "peers" SUBSEP "cpu-" ps[i]; for (x = 1; x <= n[k]; x++) y[x] = v[k, x]; printf " %s %d", ps[i], median(y, n[k]) }
	printf "\n"
}' "$W/results"
echo "work dir: $W"
