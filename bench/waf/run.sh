#!/bin/sh
# Side-by-side WAF benchmark of /work/shared/BENCH.md "WAF", reproducing
# the figures of waf/README.md:
#
#   origin  nginx on 127.0.0.1:18180, one worker, access log off,
#           keep-alive, /index.html (a small page)
#   peers   nginx + ModSecurity v3 + CRS from Debian (libnginx-mod-http-
#           modsecurity, modsecurity-crs 3.3.4; engine On, PL1, the
#           recommended config) on :18181;
#           plain Coraza v3.8.1 + CRS v4.25.0 as a net/http reverse proxy
#           (bench/waf/corazaproxy) on :18182;
#           ours: waf.Server with the default engine and the access
#           events stored (bench/waf/seccloud-waf) on :18183
#   load    wrk -t 2 -c 64, Host app.bench.test, a browser User-Agent,
#           Accept */*:
#             varied  GET /index.html?id=<n*7919 mod 1000003>&date=2026-MM-DD
#                     &q=<one of 8 percent-encoded Japanese/English words>,
#                     a new query on every request (Lua request())
#             fixed   GET /index.html?id=123&name=alice
#             sqli    GET /index.html?id=1%27%20OR%20%271%27%3D%271 (all 403)
#
# Every target is measured RUNS times (default 3) for DURATION (default
# 20s), interleaved round by round; medians and ratios are printed at the
# end. Needs root for apt-get (nginx, libnginx-mod-http-modsecurity,
# modsecurity-crs, wrk) when they are missing.
#
#   bash bench/waf/run.sh                       # about 12 minutes
#   RUNS=1 DURATION=5s bash bench/waf/run.sh    # a quick look
#   PROFILE=1 bash bench/waf/run.sh             # CPU profile of ours
#
# Raw wrk output goes to $OUT (default /tmp/waf-bench.txt).
set -eu
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-20s}
OUT=${OUT:-/tmp/waf-bench.txt}
PATH=$PATH:/usr/sbin

need=""
command -v nginx >/dev/null 2>&1 || need="$need nginx"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
[ -e /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] || need="$need libnginx-mod-http-modsecurity"
[ -d /usr/share/modsecurity-crs ] || need="$need modsecurity-crs"
if [ -n "$need" ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need
fi

W=$(mktemp -d /tmp/waf-bench.XXXXXX)
chmod 755 "$W"
mkdir -p "$W/www" "$W/events"
printf '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><title>防災情報</title></head><body><h1>防災情報</h1><p>%s</p></body></html>\n' \
	"$(head -c 600 /dev/zero | tr '\0' 'x')" > "$W/www/index.html"
chmod 644 "$W/www/index.html"

cleanup() {
	for p in ours coraza; do
		[ -f "$W/$p.pid" ] && kill "$(cat "$W/$p.pid")" 2>/dev/null || true
	done
	for n in origin modsec; do
		[ -f "$W/$n.pid" ] && kill "$(cat "$W/$n.pid")" 2>/dev/null || true
	done
	sleep 1
}
trap cleanup EXIT INT TERM

# ModSecurity: the recommended settings (ModSecurity's
# modsecurity.conf-recommended when a package installed it, else the same
# directives written here), engine On, CRS PL1 (crs-setup default).
if [ -f /etc/modsecurity/modsecurity.conf-recommended ]; then
	cp /etc/modsecurity/modsecurity.conf-recommended "$W/modsecurity.conf"
	sed -i -e 's/^SecRuleEngine .*/SecRuleEngine On/' -e 's/^SecAuditEngine .*/SecAuditEngine Off/' \
		-e "s|^SecAuditLog .*|SecAuditLog $W/modsec_audit.log|" -e '/^SecUnicodeMapFile/d' "$W/modsecurity.conf"
else
	cat > "$W/modsecurity.conf" <<MODSEC
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.'"
SecPcreMatchLimit 1000
SecPcreMatchLimitRecursion 1000
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml
SecResponseBodyLimit 524288
SecResponseBodyLimitAction ProcessPartial
SecTmpDir $W
SecDataDir $W
SecAuditEngine Off
SecArgumentSeparator &
SecCookieFormat 0
MODSEC
fi
crs_setup=/etc/modsecurity/crs/crs-setup.conf
[ -f "$crs_setup" ] || crs_setup=/usr/share/modsecurity-crs/crs-setup.conf.example
cat > "$W/modsec-main.conf" <<MODSEC
Include $W/modsecurity.conf
Include $crs_setup
Include /usr/share/modsecurity-crs/rules/*.conf
MODSEC

cat > "$W/origin.conf" <<NGINX
worker_processes 1;
pid $W/origin.pid;
error_log $W/origin-error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_timeout 75s;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:18180 reuseport backlog=4096;
		root $W/www;
		location / { }
	}
}
NGINX
nginx -c "$W/origin.conf"

cat > "$W/modsec.conf" <<NGINX
load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;
worker_processes 2;
pid $W/modsec.pid;
error_log $W/modsec-error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_timeout 75s;
	keepalive_requests 1000000;
	upstream origin { server 127.0.0.1:18180; keepalive 64; }
	server {
		listen 127.0.0.1:18181 backlog=4096;
		modsecurity on;
		modsecurity_rules_file $W/modsec-main.conf;
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
		}
	}
}
NGINX
nginx -c "$W/modsec.conf"

go build -o "$W/corazaproxy" ./bench/waf/corazaproxy
go build -o "$W/seccloud-waf" ./bench/waf/seccloud-waf
"$W/corazaproxy" -listen 127.0.0.1:18182 -origin http://127.0.0.1:18180 2> "$W/coraza.log" &
echo $! > "$W/coraza.pid"
prof=""
[ "${PROFILE:-}" = 1 ] && prof="-cpuprofile $W/ours.cpu"
"$W/seccloud-waf" -listen 127.0.0.1:18183 -origin 127.0.0.1:18180 -data "$W/events" $prof 2> "$W/ours.log" &
echo $! > "$W/ours.pid"

waitport() {
	i=0
	until curl -s -o /dev/null -H 'Host: app.bench.test' "http://127.0.0.1:$1/index.html"; do
		i=$((i + 1))
		[ $i -gt 150 ] && { echo "port $1 never answered" >&2; exit 1; }
		sleep 0.2
	done
}
for p in 18180 18181 18182 18183; do waitport $p; done

UA='Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'
cat > "$W/varied.lua" <<LUA
local words = {"%E9%98%B2%E7%81%BD", "%E9%81%BF%E9%9B%A3%E6%89%80", "%E3%81%8A%E7%9F%A5%E3%82%89%E3%81%9B",
  "%E3%81%94%E3%81%BF%E5%8F%8E%E9%9B%86", "weather", "library", "station", "school"}
local n = 0
wrk.headers["Host"] = "app.bench.test"
wrk.headers["User-Agent"] = "$UA"
wrk.headers["Accept"] = "*/*"
function setup(thread)
  thread:set("base", math.random(1, 1000000))
end
function request()
  n = n + 1
  local i = n + (base or 0) * 1000
  local path = string.format("/index.html?id=%d&date=2026-%02d-%02d&q=%s",
    (i * 7919) % 1000003, (i % 12) + 1, (i % 28) + 1, words[(i % 8) + 1])
  return wrk.format("GET", path)
end
LUA
for w in fixed sqli; do
	cat > "$W/$w.lua" <<LUA
wrk.headers["Host"] = "app.bench.test"
wrk.headers["User-Agent"] = "$UA"
wrk.headers["Accept"] = "*/*"
LUA
done

# The varied workload's checks: every target must answer 200 to benign
# and 403 to the SQL injection before it is measured.
for p in 18181 18182 18183; do
	s=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: app.bench.test' -A "$UA" "http://127.0.0.1:$p/index.html?id=1%27%20OR%20%271%27%3D%271")
	[ "$s" = 403 ] || echo "warning: port $p answered $s to the SQL injection" >&2
	s=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: app.bench.test' -A "$UA" "http://127.0.0.1:$p/index.html?id=5&date=2026-01-02&q=%E9%98%B2%E7%81%BD")
	[ "$s" = 200 ] || echo "warning: port $p answered $s to a benign GET" >&2
done

port() {
	case $1 in modsec) echo 18181 ;; coraza) echo 18182 ;; ours) echo 18183 ;; esac
}

# run TARGET WORKLOAD DURATION: one wrk run; "TARGET WORKLOAD req/s"
# appended to $W/results.
run() {
	p=$(port "$1")
	case $2 in
	varied) path=/index.html ;;
	fixed) path="/index.html?id=123&name=alice" ;;
	sqli) path="/index.html?id=1%27%20OR%20%271%27%3D%271" ;;
	esac
	wrk -t 2 -c 64 -d "$3" -s "$W/$2.lua" "http://127.0.0.1:$p$path" > "$W/wrk.txt" 2>&1 || true
	{ echo "== $1 $2 $3 (load $(cut -d' ' -f1 /proc/loadavg))"; cat "$W/wrk.txt"; } >> "$OUT"
	if [ "$2" != sqli ] && grep -q -E "Non-2xx|Socket errors" "$W/wrk.txt"; then
		echo "warning: $1 $2: $(grep -E 'Non-2xx|Socket errors' "$W/wrk.txt")" >&2
	fi
	awk -v t="$1" -v w="$2" '/^Requests\/sec:/ { printf "%s %s %s\n", t, w, $2 }' "$W/wrk.txt" >> "$W/results"
}

: > "$OUT"
: > "$W/results"
echo "warming up"
for t in modsec coraza ours; do run $t varied 3s; done
: > "$W/results"
for wl in varied fixed sqli; do
	r=1
	while [ $r -le "$RUNS" ]; do
		for t in modsec coraza ours; do
			echo "run $r/$RUNS: $t $wl $DURATION"
			run $t $wl "$DURATION"
		done
		r=$((r + 1))
	done
done

echo
echo "== medians of $RUNS runs of $DURATION, wrk -t 2 -c 64 (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
awk '
function median(a, n,    i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ k = $1 SUBSEP $2; n[k]++; v[k, n[k]] = $3 }
END {
	split("modsec coraza ours", ts, " "); split("varied fixed sqli", ws, " ")
	printf "%-8s %12s %12s %12s\n", "target", "varied r/s", "fixed r/s", "sqli r/s"
	for (i = 1; i <= 3; i++) {
		for (j = 1; j <= 3; j++) { k = ts[i] SUBSEP ws[j]; for (x = 1; x <= n[k]; x++) y[x] = v[k, x]; m[ts[i], ws[j]] = median(y, n[k]) }
		printf "%-8s %12.0f %12.0f %12.0f\n", ts[i], m[ts[i], "varied"], m[ts[i], "fixed"], m[ts[i], "sqli"]
	}
	for (j = 1; j <= 3; j++) printf "ours / coraza %-7s %.2fx   ours / modsec %.2fx\n", ws[j], m["ours", ws[j]] / m["coraza", ws[j]], m["ours", ws[j]] / m["modsec", ws[j]]
}' "$W/results"
kill "$(cat "$W/ours.pid")"
wait "$(cat "$W/ours.pid")" 2>/dev/null || true
rm -f "$W/ours.pid"
[ "${PROFILE:-}" = 1 ] && echo "CPU profile: $W/ours.cpu (go tool pprof -top $W/seccloud-waf $W/ours.cpu)"
echo "work dir: $W"
