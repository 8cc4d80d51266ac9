#!/bin/bash
# Idle CONNECT tunnels: how much memory each one costs the proxy, ours
# against Squid 5.7 (Debian), side by side in one run on loopback — the
# issue 4 figure "60,000 concurrent idle CONNECT tunnels held with
# RSS ≤ 1 GiB".
#
#   origin  bench/proxy/idleclient -origin: accepts and holds every
#           connection on 127.0.0.1–127.0.0.4:18443 (four destination
#           addresses, so upstream connections from one egress address are
#           not limited to one address's ephemeral ports)
#   client  bench/proxy/idleclient: N tunnels through the proxy, 5,000 per
#           source address 127.0.10.1, 127.0.10.2, ..., each checked for
#           "200", then held idle
#   peers   ours: bench/proxy/seccloud-proxy (access log on, into
#           detect/store), tenant 127.0.0.0/8; Squid: `squid -N` (one
#           process), `cache deny all`, access log on
#
# For each proxy: VmRSS after start (base), VmRSS and VmHWM with N tunnels
# held for SETTLE seconds; bytes per tunnel = (RSS - base) / N, and the RSS
# that 60,000 tunnels would need at that slope. Kernel socket buffers are
# not in RSS (idle sockets hold almost none).
#
#   bench/proxy/idle.sh            # N=60000 when the fd limit allows
#   N=9000 bench/proxy/idle.sh
#   OURS=/tmp/old/seccloud-proxy SQUID=0 bench/proxy/idle.sh   # another build, no Squid
#
# A proxy needs 2 descriptors per tunnel: N is cut to what `ulimit -Hn`
# allows (a container without CAP_SYS_RESOURCE cannot raise it) and the
# cut is printed. Needs root for apt-get (squid) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-60000}
SETTLE=${SETTLE:-5}
PORT=18443

command -v squid >/dev/null 2>&1 || [ -x /usr/sbin/squid ] ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends squid
PATH=$PATH:/usr/sbin

want=$((2 * N + 1000))
if ! ulimit -n "$want" 2>/dev/null; then
	hard=$(ulimit -Hn)
	ulimit -n "$hard"
	cut=$(((hard - 1000) / 2))
	if [ "$cut" -lt "$N" ]; then
		echo "fd hard limit $hard: N cut from $N to $cut (a proxy holds 2 descriptors per tunnel)"
		N=$cut
	fi
fi
echo "N=$N tunnels, fd limit $(ulimit -n), load average: $(cut -d' ' -f1-3 /proc/loadavg)"

W=$(mktemp -d /tmp/proxy-idle.XXXXXX)
chmod 755 "$W"
mkdir -p "$W/events" "$W/sq"
id proxy >/dev/null 2>&1 && chown proxy "$W/sq"
mkdir -p /run/squid && { id proxy >/dev/null 2>&1 && chown proxy /run/squid || true; }
go build -o "$W/seccloud-proxy" ./bench/proxy/seccloud-proxy
[ -n "${OURS:-}" ] && cp "$OURS" "$W/seccloud-proxy"
go build -o "$W/idleclient" ./bench/proxy/idleclient

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

cat > "$W/squid.conf" <<SQUID
http_port 127.0.0.1:13131
acl benchnet src 127.0.0.0/8
http_access allow benchnet
http_access deny all
cache deny all
max_filedescriptors $(ulimit -n)
access_log stdio:$W/sq/access.log squid
cache_log $W/sq/cache.log
pid_filename $W/sq/squid.pid
coredump_dir $W/sq
shutdown_lifetime 1 second
SQUID

rss() { awk -v k="$2:" '$1 == k { print $2 * 1024 }' "/proc/$1/status"; }

# measure NAME PID PROXYADDR
measure() {
	local name=$1 pid=$2 addr=$3
	sleep 2
	local base
	base=$(rss "$pid" VmRSS)
	"$W/idleclient" -origin -port $PORT -addrs 4 > "$W/origin.out" 2> "$W/origin.err" &
	local opid=$!
	sleep 1
	mkfifo "$W/hold.$name"
	"$W/idleclient" -proxy "$addr" -n "$N" -port $PORT -addrs 4 < "$W/hold.$name" > "$W/client.$name" 2>&1 &
	local cpid=$!
	exec 7> "$W/hold.$name" # keeps the client holding its tunnels
	until grep -q '^open' "$W/client.$name" 2>/dev/null; do
		kill -0 "$cpid" 2>/dev/null || { cat "$W/client.$name"; exit 1; }
		sleep 1
	done
	sleep "$SETTLE"
	local open after hwm
	open=$(awk '/^open/ { print $2 }' "$W/client.$name")
	after=$(rss "$pid" VmRSS)
	hwm=$(rss "$pid" VmHWM)
	echo "$name: $(cat "$W/client.$name" | tr '\n' ' ')"
	awk -v n="$name" -v b="$base" -v a="$after" -v h="$hwm" -v k="$open" 'BEGIN {
		slope = (a - b) / k
		printf "%-5s base %.1f MB  with %d tunnels %.1f MB (peak %.1f MB)  %.0f B/tunnel  60,000 tunnels ≈ %.2f GiB\n",
			n, b / 1e6, k, a / 1e6, h / 1e6, slope, (b + 60000 * slope) / 2^30
	}' | tee -a "$W/result"
	exec 7>&-
	wait "$cpid" || true
	kill "$opid"
	wait "$opid" 2>/dev/null || true
	rm -f "$W/hold.$name"
}

"$W/seccloud-proxy" -listen 127.0.0.1:13128 -data "$W/events" -tenant-net 127.0.0.0/8 -connect-port $PORT 2> "$W/ours.log" &
ours=$!
pids+=("$ours")
measure ours "$ours" 127.0.0.1:13128
kill "$ours"
wait "$ours" 2>/dev/null || true

if [ "${SQUID:-1}" != 0 ]; then
	squid -N -f "$W/squid.conf" &
	sq=$!
	pids+=("$sq")
	measure squid "$sq" 127.0.0.1:13131
	kill "$sq"
	wait "$sq" 2>/dev/null || true
fi

awk '{ for (i = 1; i <= NF; i++) if ($i == "B/tunnel") b[$1] = $(i - 1) }
	END { if (b["ours"] > 0 && b["squid"] > 0) printf "Squid / ours per tunnel: %.1fx\n", b["squid"] / b["ours"] }' "$W/result"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); files in $W"
