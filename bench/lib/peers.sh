# Shared pieces of the side-by-side bench scripts: installing the Debian
# peers, and writing their configs so that every script measures the same
# peer the same way. Source it from bash:
#
#   . "$(dirname "$0")/../lib/peers.sh"
#
# Every function writes under the work directory it is given and listens
# on 127.0.0.1 only.

# bench_install PKG...: apt-get install the packages (no recommends),
# without letting them start system services. Postfix is preseeded as
# "No configuration" so the machine's own mail setup is left alone.
bench_install() {
	[ $# -gt 0 ] || return 0
	echo "installing $*" >&2
	case " $* " in *" postfix "*) echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections ;; esac
	apt-get update -qq
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
	rm -f /usr/sbin/policy-rc.d
}

# median: the median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# nginx_origin DIR PORT [SERVER-LINE...]: nginx, one worker, access log
# off, keep-alive, bodies up to 4 MiB, serving DIR/www on 127.0.0.1:PORT,
# with the extra lines given inside its server block; pid in
# DIR/origin.pid.
nginx_origin() {
	local d=$1 port=$2 extra
	shift 2
	extra=$(printf '\t\t%s\n' "$@")
	cat >"$d/origin.conf" <<NGINX
worker_processes 1;
pid $d/origin.pid;
error_log $d/origin-error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_timeout 75s;
	keepalive_requests 1000000;
	sendfile on;
	server {
		listen 127.0.0.1:$port reuseport backlog=4096;
		root $d/www;
		client_max_body_size 4m;
		location / { }
$extra
	}
}
NGINX
	nginx -c "$d/origin.conf"
}

# bench_zone FILE [EXTRA-LINE...]: the zone bench.test. with h00000 …
# h09999 (A records in 198.18.0.0/15), ns1 at 127.0.0.1, and the extra
# lines given.
bench_zone() {
	local f=$1
	shift
	{
		echo '$ORIGIN bench.test.'
		echo '$TTL 86400'
		echo '@ IN SOA ns1 hostmaster 1 3600 600 864000 86400'
		echo '@ IN NS ns1'
		echo 'ns1 IN A 127.0.0.1'
		for l in "$@"; do echo "$l"; done
		awk 'BEGIN { for (i = 0; i < 10000; i++) printf "h%05d 86400 IN A 198.18.%d.%d\n", i, int(i / 250), i % 250 + 1 }'
	} >"$f"
}

# nsd_conf DIR PORT: DIR/nsd.conf serving DIR/bench.test.zone on
# 127.0.0.1:PORT, response rate limiting off. Start with
# `nsd -d -c DIR/nsd.conf &`.
nsd_conf() {
	cat >"$1/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1
  port: $2
  username: ""
  chroot: ""
  zonesdir: "$1"
  database: ""
  zonelistfile: "$1/zone.list"
  xfrdfile: "$1/xfrd.state"
  xfrdir: "$1"
  pidfile: "$1/nsd.pid"
  logfile: "$1/nsd.log"
  verbosity: 0
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: bench.test
  zonefile: "$1/bench.test.zone"
CONF
}

# unbound_server DIR PORT: the server: block the benches share (2
# threads, caches of 64 + 128 MiB, loopback, no logs), on stdout.
unbound_server() {
	cat <<CONF
server:
  interface: 127.0.0.1
  port: $2
  num-threads: 2
  so-reuseport: yes
  module-config: "iterator"
  msg-cache-size: 64m
  rrset-cache-size: 128m
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "$1"
  pidfile: "$1/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  log-queries: no
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  local-zone: "test." nodefault
CONF
}

# unbound_conf DIR PORT NSD_PORT: DIR/unbound.conf forwarding bench.test.
# to 127.0.0.1@NSD_PORT. Start with `unbound -d -c DIR/unbound.conf &`.
unbound_conf() {
	{
		unbound_server "$1" "$2"
		cat <<CONF
  domain-insecure: "bench.test."
remote-control:
  control-enable: no
forward-zone:
  name: "bench.test."
  forward-addr: 127.0.0.1@$3
CONF
	} >"$1/unbound.conf"
}

# unbound_hints_conf DIR PORT HINTS: DIR/unbound.conf recursing from the
# root hints file HINTS (IPv4 only).
unbound_hints_conf() {
	{
		unbound_server "$1" "$2"
		cat <<CONF
  root-hints: "$3"
  do-ip6: no
remote-control:
  control-enable: no
CONF
	} >"$1/unbound.conf"
}

# modsec_conf DIR PORT ORIGIN_PORT: DIR/modsec.conf, nginx (2 workers)
# with ModSecurity v3 + CRS from Debian (the recommended settings, engine
# On, PL1) proxying to the origin on 127.0.0.1:ORIGIN_PORT with upstream
# keep-alive. Start with `nginx -c DIR/modsec.conf`; pid in DIR/modsec.pid.
modsec_conf() {
	if [ -f /etc/modsecurity/modsecurity.conf-recommended ]; then
		cp /etc/modsecurity/modsecurity.conf-recommended "$1/modsecurity.conf"
		sed -i -e 's/^SecRuleEngine .*/SecRuleEngine On/' -e 's/^SecAuditEngine .*/SecAuditEngine Off/' \
			-e "s|^SecAuditLog .*|SecAuditLog $1/modsec_audit.log|" -e '/^SecUnicodeMapFile/d' "$1/modsecurity.conf"
	else
		cat >"$1/modsecurity.conf" <<MODSEC
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
SecTmpDir $1
SecDataDir $1
SecAuditEngine Off
SecArgumentSeparator &
SecCookieFormat 0
MODSEC
	fi
	# bodies up to 2 MiB are inspected (the 1 MiB JSON workload), not refused
	sed -i -e 's/^SecRequestBodyNoFilesLimit .*/SecRequestBodyNoFilesLimit 2097152/' "$1/modsecurity.conf"
	grep -q '^SecRequestBodyNoFilesLimit' "$1/modsecurity.conf" || echo 'SecRequestBodyNoFilesLimit 2097152' >>"$1/modsecurity.conf"
	local crs_setup=/etc/modsecurity/crs/crs-setup.conf
	[ -f "$crs_setup" ] || crs_setup=/usr/share/modsecurity-crs/crs-setup.conf.example
	printf 'Include %s\nInclude %s\nInclude /usr/share/modsecurity-crs/rules/*.conf\n' "$1/modsecurity.conf" "$crs_setup" >"$1/modsec-main.conf"
	cat >"$1/modsec.conf" <<NGINX
load_module /usr/lib/nginx/modules/ngx_http_modsecurity_module.so;
worker_processes 2;
pid $1/modsec.pid;
error_log $1/modsec-error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_timeout 75s;
	keepalive_requests 1000000;
	upstream origin { server 127.0.0.1:$3; keepalive 64; }
	client_max_body_size 4m;
	server {
		listen 127.0.0.1:$2 backlog=4096;
		modsecurity on;
		modsecurity_rules_file $1/modsec-main.conf;
		location / {
			proxy_pass http://origin;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
		}
	}
}
NGINX
}

# postfix_instance DIR PORT RELAY_PORT [MAIN.CF-LINE...]: a Postfix
# instance of its own under DIR (config DIR/etc, queue DIR/spool, log
# DIR/maillog), smtpd on 127.0.0.1:PORT only, no chroot, relaying
# everything from 127.0.0.0/8 to [127.0.0.1]:RELAY_PORT, logging on.
# Start and stop with `postfix -c DIR/etc start|stop`.
postfix_instance() {
	local d=$1 port=$2 relay=$3
	shift 3
	mkdir -p "$d/etc" "$d/spool" "$d/data"
	cp /etc/postfix/master.cf.proto "$d/etc/master.cf" 2>/dev/null || cp /usr/share/postfix/master.cf.dist "$d/etc/master.cf"
	sed -i -e '/^smtp      inet/d' "$d/etc/master.cf"
	echo "127.0.0.1:$port inet  n       -       n       -       -       smtpd" >>"$d/etc/master.cf"
	sed -i -e 's/^\(\S\+\s\+\S\+\s\+\S\+\s\+\S\+\s\+\)y\(\s\)/\1n\2/' "$d/etc/master.cf" # no chroot
	grep -q '^postlog' "$d/etc/master.cf" || echo 'postlog   unix-dgram n  -       n       -       1       postlogd' >>"$d/etc/master.cf"
	{
		cat <<EOF
compatibility_level = 3.6
queue_directory = $d/spool
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$relay
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = $d/maillog
maillog_file_prefixes = $(dirname "$d")
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_connection_cache_destinations = [127.0.0.1]:$relay
alias_maps =
alias_database =
local_recipient_maps =
biff = no
EOF
		for l in "$@"; do echo "$l"; done
	} >"$d/etc/main.cf"
	chown -R postfix "$d/data"
	postfix -c "$d/etc" set-permissions >/dev/null 2>&1 || true
	postfix -c "$d/etc" check
}

# squid_conf DIR NAME PORT WORKERS: DIR/NAME.conf, a forward proxy on
# 127.0.0.1:PORT for localhost, no caching (`cache deny all`), access log
# on (DIR/NAME/access.log). Start with `squid -n NAME -f DIR/NAME.conf`,
# stop with `-k shutdown`.
squid_conf() {
	mkdir -p "$1/$2" /run/squid
	if id proxy >/dev/null 2>&1; then chown proxy "$1/$2" /run/squid; fi
	cat >"$1/$2.conf" <<SQUID
http_port 127.0.0.1:$3
workers $4
http_access allow localhost
http_access deny all
cache deny all
access_log stdio:$1/$2/access.log squid
cache_log $1/$2/cache.log
pid_filename $1/$2/squid.pid
coredump_dir $1/$2
shutdown_lifetime 1 second
SQUID
}

BENCH_UA='Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'

# waf_varied_lua FILE: the wrk script of the WAF benches' benign load:
# GET /index.html?id=…&date=…&q=… with a new query on every request (ids,
# dates, Japanese and English search words), Host app.bench.test, a
# browser User-Agent.
waf_varied_lua() {
	cat >"$1" <<LUA
local words = {"%E9%98%B2%E7%81%BD", "%E9%81%BF%E9%9B%A3%E6%89%80", "%E3%81%8A%E7%9F%A5%E3%82%89%E3%81%9B",
  "%E3%81%94%E3%81%BF%E5%8F%8E%E9%9B%86", "weather", "library", "station", "school"}
local n = 0
wrk.headers["Host"] = "app.bench.test"
wrk.headers["User-Agent"] = "$BENCH_UA"
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
}
