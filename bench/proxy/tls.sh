#!/bin/sh
# TLS-inspected HTTPS requests/s: seccloud proxy.Server with TLS inspection
# against Squid 5.7 with ssl_bump (Debian's squid-openssl), on loopback,
# both in one run (issue 4, "TLS-inspected HTTPS requests/s vs Squid with
# ssl_bump on the same workload").
#
#   origin  nginx on 127.0.0.1:18443 as https://origin.bench.test (a bench
#           CA's certificate; both proxies map the name to 127.0.0.1:
#           Squid's hosts_file, ours -hosts), one worker, access log off,
#           keep-alive, /1k
#   peers   Squid one process on :13139, `http_port ... ssl-bump`,
#           `ssl_bump bump all`, minted certificates
#           (generate-host-certificates, security_file_certgen), origin
#           verified against the bench CA, access log on; seccloud
#           proxy.Server on :13138, inspecting everything, origin verified
#           against the bench CA, access log on (detect/store)
#   load    bench/proxy/tlsload (wrk speaks no CONNECT): 64 connections
#           of CONNECT + TLS (HTTP/1.1), keep-alive GETs of /1k for
#           DURATION; then the same with a new tunnel and a full handshake
#           per request (-newconn, 16 connections)
#
#   bash bench/proxy/tls.sh                    # about 5 minutes
#   RUNS=1 DURATION=5s bash bench/proxy/tls.sh # a quick look
#
# Installing squid-openssl replaces Debian's plain squid package (the two
# conflict); bench/proxy/run.sh works with either. Needs root for apt-get.
set -eu
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-20s}
OUT=${OUT:-/tmp/proxy-tls-bench.txt}
PATH=$PATH:/usr/sbin

if ! [ -x /usr/lib/squid/security_file_certgen ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends squid-openssl
fi
command -v nginx >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light

W=$(mktemp -d /tmp/proxy-tls-bench.XXXXXX)
chmod 755 "$W"
mkdir -p "$W/www" "$W/sq" "$W/events"
head -c 1024 /dev/urandom > "$W/www/1k"
chmod 644 "$W/www/1k"

cleanup() {
	[ -f "$W/ours.pid" ] && kill "$(cat "$W/ours.pid")" 2>/dev/null || true
	squid -n sqtls -f "$W/sq.conf" -k shutdown 2>/dev/null || true
	[ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
	sleep 2
}
trap cleanup EXIT INT TERM

# The bench CA signs the origin; each proxy has its own inspection CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=bench origin CA" -keyout "$W/origin-ca.key" -out "$W/origin-ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=origin.bench.test" \
	-keyout "$W/origin.key" -out "$W/origin.csr" 2>/dev/null
printf 'subjectAltName=DNS:origin.bench.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$W/ext.cnf"
openssl x509 -req -in "$W/origin.csr" -CA "$W/origin-ca.pem" -CAkey "$W/origin-ca.key" -CAcreateserial \
	-days 30 -extfile "$W/ext.cnf" -out "$W/origin.pem" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=squid bench bump CA" -addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" -keyout "$W/squid-ca.key" -out "$W/squid-ca.pem" 2>/dev/null
cat "$W/squid-ca.pem" "$W/squid-ca.key" > "$W/squid-ca-bundle.pem"
if id proxy >/dev/null 2>&1; then chown -R proxy "$W/sq"; chmod 644 "$W/squid-ca-bundle.pem" "$W/squid-ca.key"; fi

cat > "$W/nginx.conf" <<NGINX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_timeout 75s;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:18443 ssl reuseport backlog=4096;
		ssl_certificate $W/origin.pem;
		ssl_certificate_key $W/origin.key;
		root $W/www;
		location / { }
	}
}
NGINX
nginx -c "$W/nginx.conf"

/usr/lib/squid/security_file_certgen -c -s "$W/sq/ssl_db" -M 16MB >/dev/null
if id proxy >/dev/null 2>&1; then chown -R proxy "$W/sq"; fi
echo "127.0.0.1 origin.bench.test" > "$W/hosts"
cat > "$W/sq.conf" <<SQUID
hosts_file $W/hosts
http_port 127.0.0.1:13139 ssl-bump tls-cert=$W/squid-ca-bundle.pem generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program /usr/lib/squid/security_file_certgen -s $W/sq/ssl_db -M 16MB
sslcrtd_children 4
ssl_bump bump all
tls_outgoing_options cafile=$W/origin-ca.pem
acl bench_port port 18443
acl CONNECT method CONNECT
http_access allow localhost
http_access deny all
cache deny all
access_log stdio:$W/sq/access.log squid
cache_log $W/sq/cache.log
pid_filename $W/sq/squid.pid
coredump_dir $W/sq
shutdown_lifetime 1 second
SQUID
squid -n sqtls -f "$W/sq.conf"

go build -o "$W/seccloud-proxy" ./bench/proxy/seccloud-proxy
go build -o "$W/tlsload" ./bench/proxy/tlsload
"$W/seccloud-proxy" -listen 127.0.0.1:13138 -data "$W/events" -connect-port 18443 -hosts "$W/hosts" \
	-inspect-ca "$W/ours-ca.pem" -inspect-key "$W/ours-ca.key" -roots "$W/origin-ca.pem" 2> "$W/ours.log" &
echo $! > "$W/ours.pid"

URL=https://origin.bench.test:18443/1k
until curl -s -o /dev/null --resolve origin.bench.test:18443:127.0.0.1 --cacert "$W/origin-ca.pem" $URL; do sleep 0.2; done
i=0
until [ -f "$W/ours-ca.pem" ] && curl -sf -o /dev/null -x http://127.0.0.1:13138 --cacert "$W/ours-ca.pem" $URL &&
	curl -sf -o /dev/null -x http://127.0.0.1:13139 --cacert "$W/squid-ca.pem" $URL; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "a proxy never answered (see $W)" >&2; exit 1; }
	sleep 0.3
done

# run TARGET MODE DURATION: one tlsload run; "TARGET MODE req/s" to results.
run() {
	case $1 in
	squid) p=127.0.0.1:13139 ca=$W/squid-ca.pem ;;
	ours) p=127.0.0.1:13138 ca=$W/ours-ca.pem ;;
	esac
	case $2 in
	keepalive) extra="-c 64" ;;
	newconn) extra="-c 16 -newconn" ;;
	esac
	"$W/tlsload" -proxy "$p" -cacert "$ca" -url "$URL" -d "$3" $extra > "$W/load.txt" 2>&1 || true
	{ echo "== $1 $2 $3 (load $(cut -d' ' -f1 /proc/loadavg))"; cat "$W/load.txt"; } >> "$OUT"
	awk -v t="$1" -v m="$2" '/^requests/ { if ($4 > 0) print "warning: " t " " m ": " $4 " errors" > "/dev/stderr"; print t, m, $8 }' "$W/load.txt" >> "$W/results"
}

: > "$OUT"
: > "$W/results"
echo "warming up"
for t in squid ours; do run $t keepalive 3s; done
: > "$W/results"
for mode in keepalive newconn; do
	r=1
	while [ $r -le "$RUNS" ]; do
		for t in squid ours; do
			echo "run $r/$RUNS: $t $mode $DURATION"
			run $t $mode "$DURATION"
		done
		r=$((r + 1))
	done
done

echo
echo "== medians of $RUNS runs of $DURATION (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
awk '
function median(a, n,    i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ k = $1 SUBSEP $2; n[k]++; v[k, n[k]] = $3 }
END {
	split("keepalive newconn", ms, " ")
	printf "%-10s %14s %14s %8s\n", "mode", "squid req/s", "ours req/s", "ratio"
	for (i = 1; i <= 2; i++) {
		for (t = 1; t <= 2; t++) {
			tg = t == 1 ? "squid" : "ours"; k = tg SUBSEP ms[i]
			for (j = 1; j <= n[k]; j++) x[j] = v[k, j]
			m[tg] = median(x, n[k])
		}
		printf "%-10s %14.0f %14.0f %7.2fx\n", ms[i], m["squid"], m["ours"], m["squid"] ? m["ours"] / m["squid"] : 0
	}
}' "$W/results"
kill "$(cat "$W/ours.pid")"
wait "$(cat "$W/ours.pid")" 2>/dev/null || true
rm -f "$W/ours.pid"
grep events: "$W/ours.log" || true
echo "raw output: $OUT; work dir: $W"
