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
#             form    POST /contact/send, a 10 KiB urlencoded inquiry form
#                     (name, kana, e-mail, phone, address, dates, token and a
#                     Japanese/English message of sentences in a new random
#                     order), new values on every request (Lua request())
#             json    POST /api/report, a 1 MiB nested JSON report (about
#                     2,300 shelters: ids, names, addresses, coordinates,
#                     facilities, contacts, notes, timestamps), a new draw
#                     from a per-thread pool of 8,192 random records, in a
#                     new order, on every request
#           The POST workloads use POST_CONNS (default 8) connections.
#           The peak RSS of each server (nginx: master + workers) is
#           sampled every 0.5 s during every run.
#           ModSecurity's SecRequestBodyNoFilesLimit (128 KiB in the
#           recommended config) is raised to 2 MiB and nginx's
#           client_max_body_size to 4 MiB, so that the 1 MiB JSON is
#           inspected rather than refused with 413.
#
# Every target is measured RUNS times (default 3) for DURATION (default
# 20s), interleaved round by round; medians and ratios are printed at the
# end. Needs root for apt-get (nginx, libnginx-mod-http-modsecurity,
# modsecurity-crs, wrk) when they are missing.
#
#   bash bench/waf/run.sh                       # about 12 minutes
#   RUNS=1 DURATION=5s bash bench/waf/run.sh    # a quick look
#   WORKLOADS="form json" bash bench/waf/run.sh # only the POST workloads
#   PROFILE=1 bash bench/waf/run.sh             # CPU profile of ours
#
# Raw wrk output goes to $OUT (default /tmp/waf-bench.txt).
set -eu
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-20s}
OUT=${OUT:-/tmp/waf-bench.txt}
WORKLOADS=${WORKLOADS:-varied fixed sqli form json}
POST_CONNS=${POST_CONNS:-8}
PATH=$PATH:/usr/sbin

. bench/lib/peers.sh
need=""
command -v nginx >/dev/null 2>&1 || need="$need nginx"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
[ -e /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] || need="$need libnginx-mod-http-modsecurity"
[ -d /usr/share/modsecurity-crs ] || need="$need modsecurity-crs"
bench_install $need

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

# ModSecurity: the recommended settings, engine On, CRS PL1 (crs-setup
# default), bodies up to 2 MiB inspected (bench/lib/peers.sh).
modsec_conf "$W" 18181 18180
nginx_origin "$W" 18180 'location = /contact/send { default_type text/plain; return 200 "ok\n"; }' \
	'location = /api/report { default_type application/json; return 200 "{\"ok\":true}\n"; }'
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

UA=$BENCH_UA
waf_varied_lua "$W/varied.lua"
for w in fixed sqli; do
	cat > "$W/$w.lua" <<LUA
wrk.headers["Host"] = "app.bench.test"
wrk.headers["User-Agent"] = "$UA"
wrk.headers["Accept"] = "*/*"
LUA
done

# The POST workloads. Shared Lua: word lists, percent-encoding, headers.
cat > "$W/post-common.lua" <<LUA
surnames = {"佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田"}
given = {"太郎", "花子", "翔太", "美咲", "健一", "陽菜", "大輔", "さくら", "Ken", "Emily"}
kana = {"サトウ タロウ", "スズキ ハナコ", "タカハシ ショウタ", "タナカ ミサキ", "イトウ ケンイチ", "ワタナベ ヒナ"}
cities = {"青葉区", "宮城野区", "若林区", "太白区", "泉区", "石巻市", "塩竈市", "名取市"}
subjects = {"避難所の開設について", "ごみ収集日の変更", "防災無線が聞こえにくい", "給水所の場所", "道路の冠水", "Question about the shelter"}
sentences = {"いつもお世話になっております。", "昨日の大雨で自宅前の道路が冠水し、車が通れない状態です。",
  "避難所（青葉小学校体育館）は何時から開設されますか？", "高齢の母（85歳）と同居しており、車いすでの移動が必要です。",
  "「防災メール」の登録方法を教えてください。", "給水車は15時30分ごろ、市民センター前に来ると聞きました。",
  "ハザードマップでは浸水想定区域0.5〜3.0mとなっています。", "Please let me know if English support is available at the shelter.",
  "ペットの同行避難は可能でしょうか。小型犬1匹です。", "停電が続いており、携帯電話の充電ができる場所を探しています。",
  "町内会の回覧板で案内を見ましたが、詳細が分かりませんでした。", "お忙しいところ恐縮ですが、ご回答をお願いいたします。",
  "The river level near the station was about 2.4 m at 7:00 this morning.", "仮設トイレの設置予定と、ごみの出し方についても知りたいです。",
  "障害者手帳を持っていますが、福祉避難所の対象になりますか。", "以上、よろしくお願いします。"}
facilities = {"水", "毛布", "発電機", "簡易トイレ", "Wi-Fi", "授乳室", "医療救護所", "ペット可"}
notes = {"体育館と2階の教室を使用中です。", "駐車場は満車です。徒歩でお越しください。", "毛布が不足しています。",
  "Interpreters available 9:00-17:00.", "段差があります。スロープは北側入口。", "特記事項なし"}
function pick(t) return t[math.random(#t)] end
function enc(s) return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end)) end
function hdrs(ct) return {["Host"] = "app.bench.test", ["User-Agent"] = "$UA", ["Accept"] = "*/*", ["Content-Type"] = ct} end
function setup(thread) thread:set("seed", math.random(1, 1000000000)) end
function init(args) math.randomseed(seed or os.time()) end
LUA
cat > "$W/form.lua" <<'LUA'
dofile(os.getenv("WAF_BENCH_DIR") .. "/post-common.lua")
local encS = nil
local n = 0
function request()
  if not encS then
    encS = {}
    for i, s in ipairs(sentences) do encS[i] = enc(s) end
  end
  n = n + 1
  local p = {
    "name=" .. enc(pick(surnames) .. " " .. pick(given)), "kana=" .. enc(pick(kana)),
    string.format("email=user%d.aoba%%40example.jp", math.random(1, 999999)),
    string.format("tel=090-%04d-%04d", math.random(0, 9999), math.random(0, 9999)),
    string.format("zip=980-%04d", math.random(0, 9999)),
    "address=" .. enc(string.format("宮城県仙台市%s本町%d丁目%d番%d号 コーポ青葉%d号室", pick(cities), math.random(1, 5), math.random(1, 20), math.random(1, 9), math.random(100, 399))),
    string.format("birth=19%02d-%02d-%02d", math.random(40, 99), math.random(1, 12), math.random(1, 28)),
    "category=" .. pick({"disaster", "welfare", "environment", "road", "other"}),
    "subject=" .. enc(pick(subjects)),
    string.format("contact_time=%d%%3A00-%d%%3A00", math.random(9, 12), math.random(13, 17)),
    string.format("household=%d", math.random(1, 6)), "agree=on",
    string.format("token=%08x%08x%08x%08x", math.random(0, 2147483646), math.random(0, 2147483646), math.random(0, 2147483646), n),
  }
  local head = table.concat(p, "&")
  local m, len = {}, #head + 9
  while true do
    local s = encS[math.random(#encS)]
    if len + #s > 10240 then break end
    m[#m + 1] = s
    len = len + #s
  end
  return wrk.format("POST", "/contact/send", hdrs("application/x-www-form-urlencoded"), head .. "&message=" .. table.concat(m))
end
LUA
cat > "$W/json.lua" <<'LUA'
dofile(os.getenv("WAF_BENCH_DIR") .. "/post-common.lua")
-- Formatting 1 MiB in Lua for every request would cap wrk at a few
-- requests/s, so each thread formats a pool of 8,192 shelter records once
-- (random ids, names, coordinates, facilities, contacts, notes, times) and
-- every request is a new draw of about 2,300 of them in a new order,
-- under a new report header.
local pool = nil
local function q(s) return '"' .. s .. '"' end
local function record()
  return string.format('{"id":"S-%06d","name":"%s%s小学校 体育館","address":{"pref":"宮城県","city":"%s","street":"本町%d-%d-%d","zip":"980-%04d"},'
    .. '"location":{"lat":%.6f,"lon":%.6f},"capacity":%d,"occupancy":%d,"open":%s,'
    .. '"facilities":[%s,%s,%s],"contacts":[{"role":"manager","name":"%s %s","tel":"022-%03d-%04d"}],'
    .. '"notes":%s,"updated":"2026-11-%02dT%02d:%02d:00+09:00"}',
    math.random(0, 999999), pick(cities), pick(surnames), pick(cities), math.random(1, 9), math.random(1, 30), math.random(1, 12), math.random(0, 9999),
    38 + math.random(), 140.5 + math.random(), math.random(100, 999), math.random(0, 399), (math.random(3) > 1) and "true" or "false",
    q(pick(facilities)), q(pick(facilities)), q(pick(facilities)), pick(surnames), pick(given), math.random(0, 999), math.random(0, 9999),
    q(pick(notes)), math.random(1, 28), math.random(0, 23), math.random(0, 59))
end
function request()
  if not pool then
    pool = {}
    for i = 1, 8192 do pool[i] = record() end
  end
  local b = {string.format('{"report":{"municipality":"青葉市","generated":"2026-%02d-%02dT%02d:%02d:%02d+09:00","version":%d,"source":"bousai-portal"},"shelters":[',
    math.random(1, 12), math.random(1, 28), math.random(0, 23), math.random(0, 59), math.random(0, 59), math.random(3, 7))}
  local len = #b[1]
  while len < 1048576 - 2048 do
    local r = pool[math.random(#pool)]
    if #b > 1 then r = "," .. r end
    b[#b + 1] = r
    len = len + #r
  end
  b[#b + 1] = "]}"
  return wrk.format("POST", "/api/report", hdrs("application/json"), table.concat(b))
end
LUA
export WAF_BENCH_DIR="$W"

# The varied workload's checks: every target must answer 200 to benign
# and 403 to the SQL injection before it is measured.
for p in 18181 18182 18183; do
	s=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: app.bench.test' -A "$UA" "http://127.0.0.1:$p/index.html?id=1%27%20OR%20%271%27%3D%271")
	[ "$s" = 403 ] || echo "warning: port $p answered $s to the SQL injection" >&2
	s=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: app.bench.test' -A "$UA" "http://127.0.0.1:$p/index.html?id=5&date=2026-01-02&q=%E9%98%B2%E7%81%BD")
	[ "$s" = 200 ] || echo "warning: port $p answered $s to a benign GET" >&2
	s=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: app.bench.test' -A "$UA" -H 'Content-Type: application/x-www-form-urlencoded' \
		--data 'name=%E5%B1%B1%E7%94%B0&message=%E9%81%BF%E9%9B%A3%E6%89%80%E3%81%AF%E3%81%A9%E3%81%93%E3%81%A7%E3%81%99%E3%81%8B%EF%BC%9F' "http://127.0.0.1:$p/contact/send")
	[ "$s" = 200 ] || echo "warning: port $p answered $s to a benign form POST" >&2
	s=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: app.bench.test' -A "$UA" -H 'Content-Type: application/x-www-form-urlencoded' \
		--data "name=x&message=1%27%20OR%20%271%27%3D%271" "http://127.0.0.1:$p/contact/send")
	[ "$s" = 403 ] || echo "warning: port $p answered $s to a form POST with an SQL injection" >&2
done

port() {
	case $1 in modsec) echo 18181 ;; coraza) echo 18182 ;; ours) echo 18183 ;; esac
}

# run TARGET WORKLOAD DURATION: one wrk run; "TARGET WORKLOAD req/s"
# appended to $W/results.
# pids TARGET: the server's processes (nginx: master and workers)
pids() {
	case $1 in
	modsec) m=$(cat "$W/modsec.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')" ;;
	*) cat "$W/$1.pid" ;;
	esac
}

# rss_kb PID...: their summed resident set size in KiB
rss_kb() {
	sum=0
	for pp in "$@"; do
		v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pp/status" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo $sum
}

# run TARGET WORKLOAD DURATION: one wrk run; "TARGET WORKLOAD req/s
# peak-RSS-MiB" appended to $W/results.
run() {
	p=$(port "$1")
	case $2 in
	varied) path=/index.html ;;
	fixed) path="/index.html?id=123&name=alice" ;;
	sqli) path="/index.html?id=1%27%20OR%20%271%27%3D%271" ;;
	form) path=/contact/send ;;
	json) path=/api/report ;;
	esac
	# the POST workloads: POST_CONNS connections (8), so that a request
	# does not wait behind 63 others of 10 KiB-1 MiB each
	conns=64 to=""
	case $2 in form | json) conns=$POST_CONNS to="--timeout 60s" ;; esac
	# shellcheck disable=SC2086
	wrk -t 2 -c $conns -d "$3" $to -s "$W/$2.lua" "http://127.0.0.1:$p$path" > "$W/wrk.txt" 2>&1 &
	wp=$!
	peak=0
	ps_=$(pids "$1")
	while kill -0 $wp 2>/dev/null; do
		# shellcheck disable=SC2086
		rk=$(rss_kb $ps_)
		[ "$rk" -gt "$peak" ] && peak=$rk
		sleep 0.5
	done
	wait $wp || true
	{ echo "== $1 $2 $3 (load $(cut -d' ' -f1 /proc/loadavg), peak RSS $((peak / 1024)) MiB)"; cat "$W/wrk.txt"; } >> "$OUT"
	if [ "$2" != sqli ] && grep -q -E "Non-2xx|Socket errors" "$W/wrk.txt"; then
		echo "warning: $1 $2: $(grep -E 'Non-2xx|Socket errors' "$W/wrk.txt")" >&2
	fi
	awk -v t="$1" -v w="$2" -v m="$((peak / 1024))" '/^Requests\/sec:/ { printf "%s %s %s %s\n", t, w, $2, m }' "$W/wrk.txt" >> "$W/results"
}

: > "$OUT"
: > "$W/results"
# Each workload is warmed up (3 s per target, not counted) right before
# its runs, so a server's peak RSS in a row is not left over from a
# heavier workload (Go returns freed memory to the system slowly); the
# workloads run in the order of WORKLOADS, the lighter ones first.
for wl in $WORKLOADS; do
	echo "warming up: $wl"
	cp "$W/results" "$W/results.keep"
	for t in modsec coraza ours; do run $t "$wl" 3s; done
	mv "$W/results.keep" "$W/results"
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
echo "== medians of $RUNS runs of $DURATION, wrk -t 2 -c 64 (POST: -c $POST_CONNS) (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
awk -v wls="$WORKLOADS" '
function median(a, n,    i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ k = $1 SUBSEP $2; n[k]++; v[k, n[k]] = $3; r[k, n[k]] = $4 }
END {
	split("modsec coraza ours", ts, " "); nw = split(wls, ws, " ")
	printf "%-8s", "target"; for (j = 1; j <= nw; j++) printf " %16s", ws[j] " r/s (MiB)"; printf "\n"
	for (i = 1; i <= 3; i++) {
		printf "%-8s", ts[i]
		for (j = 1; j <= nw; j++) {
			k = ts[i] SUBSEP ws[j]
			for (x = 1; x <= n[k]; x++) { y[x] = v[k, x]; z[x] = r[k, x] }
			m[ts[i], ws[j]] = median(y, n[k]); mr = median(z, n[k])
			printf " %10.1f (%3d)", m[ts[i], ws[j]], mr
		}
		printf "\n"
	}
	for (j = 1; j <= nw; j++) if (m["coraza", ws[j]] > 0 && m["modsec", ws[j]] > 0) printf "ours / coraza %-7s %.2fx   ours / modsec %.2fx\n", ws[j], m["ours", ws[j]] / m["coraza", ws[j]], m["ours", ws[j]] / m["modsec", ws[j]]
}' "$W/results"
kill "$(cat "$W/ours.pid")"
wait "$(cat "$W/ours.pid")" 2>/dev/null || true
rm -f "$W/ours.pid"
[ "${PROFILE:-}" = 1 ] && echo "CPU profile: $W/ours.cpu (go tool pprof -top $W/seccloud-waf $W/ours.cpu)"
echo "work dir: $W"
