package console

import (
	"net/http"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/incident"
)

// messages are the console's texts: Japanese first, English second.
var messages = map[string][2]string{
	"app":                    {"自治体情報セキュリティクラウド コンソール", "Municipal Security Cloud Console"},
	"login":                  {"ログイン", "Log in"},
	"logout":                 {"ログアウト", "Log out"},
	"user":                   {"ユーザー名", "User name"},
	"password":               {"パスワード", "Password"},
	"totp":                   {"確認コード（二要素認証を設定した場合）", "Code (if two-factor authentication is set)"},
	"login.bad":              {"ユーザー名、パスワードまたは確認コードが違います。", "Wrong user name, password or code."},
	"login.locked":           {"失敗が続いたため、このアカウントは一時的にロックされています。しばらくしてからやり直すか、SOCにご連絡ください。", "This account is locked for a while after repeated failures. Try again later or call the SOC."},
	"login.throttled":        {"試行が多すぎます。しばらくしてからやり直してください。", "Too many attempts. Please wait and try again."},
	"login.csrf":             {"画面の有効期限が切れました。もう一度ログインしてください。", "The form expired. Please log in again."},
	"dashboard":              {"ダッシュボード", "Dashboard"},
	"incidents":              {"インシデント", "Incidents"},
	"events":                 {"イベント検索", "Event search"},
	"tenants":                {"団体の設定", "Tenant settings"},
	"tenant":                 {"団体", "Tenant"},
	"all":                    {"すべて", "All"},
	"today":                  {"本日", "Today"},
	"month":                  {"今月", "This month"},
	"function":               {"機能", "Function"},
	"severity":               {"危険度", "Severity"},
	"total":                  {"合計", "Total"},
	"stopped":                {"防御", "Stopped"},
	"open.incidents":         {"対応中のインシデント", "Open incidents"},
	"health":                 {"各機能の稼働状況", "Health of each function"},
	"none":                   {"ありません。", "None."},
	"id":                     {"番号", "ID"},
	"state":                  {"状態", "State"},
	"rule":                   {"検知内容", "Detection"},
	"terminal":               {"端末", "Terminal"},
	"count":                  {"件数", "Count"},
	"first":                  {"初回", "First seen"},
	"last":                   {"最終", "Last seen"},
	"filter":                 {"絞り込み", "Filter"},
	"active.only":            {"対応中のみ", "Open only"},
	"min.severity":           {"危険度（以上）", "Severity (at least)"},
	"evidence":               {"判定の根拠", "Evidence"},
	"timeline":               {"経過", "Timeline"},
	"sample.events":          {"検知したイベント（抜粋）", "Events (sample)"},
	"ack":                    {"受領を確認する", "Acknowledge"},
	"ack.done":               {"受領確認を記録しました。", "Acknowledgement recorded."},
	"add.record":             {"記録を追加", "Add a record"},
	"kind":                   {"種類", "Kind"},
	"kind.note":              {"メモ", "Note"},
	"kind.contact":           {"連絡記録", "Contact record"},
	"kind.response":          {"対応記録", "Response record"},
	"text":                   {"内容", "Text"},
	"save":                   {"保存", "Save"},
	"change.state":           {"状態を変更", "Change state"},
	"note":                   {"備考", "Note"},
	"time":                   {"日時", "Time"},
	"by":                     {"実施者", "By"},
	"since":                  {"開始", "From"},
	"until":                  {"終了", "Until"},
	"module":                 {"機能", "Function"},
	"verdict":                {"判定", "Verdict"},
	"search":                 {"検索", "Search"},
	"detail":                 {"詳細", "Detail"},
	"source":                 {"送信元", "Source"},
	"destination":            {"宛先", "Destination"},
	"events.shown":           {"件を表示（新しいもの最大", "shown (newest, at most"},
	"events.matched":         {"件が該当", "matched"},
	"events.none":            {"イベントストアが接続されていません。", "No event store is connected."},
	"networks":               {"ネットワーク", "Networks"},
	"mail.domains":           {"メールドメイン", "Mail domains"},
	"zones":                  {"DNSゾーン", "DNS zones"},
	"sites":                  {"公開Webサイト", "Public web sites"},
	"origins":                {"オリジン", "Origins"},
	"disaster":               {"災害情報サイト", "Disaster site"},
	"egress":                 {"送信元アドレス（固定）", "Egress addresses"},
	"contacts":               {"連絡先（通知順）", "Contacts (in escalation order)"},
	"name":                   {"名称", "Name"},
	"email":                  {"メール", "Email"},
	"phone":                  {"電話", "Phone"},
	"webhook":                {"Webhook", "Webhook"},
	"policy":                 {"ポリシー", "Policy"},
	"report.only":            {"検知のみ（遮断しない）", "Report only (no blocking)"},
	"bandwidth":              {"帯域上限 (Mbps) 上り/下り", "Bandwidth cap (Mbps) up/down"},
	"settings.note":          {"設定の変更はSOCへご依頼ください（翌営業日までに対応します）。", "Ask the SOC for changes (handled by the next business day)."},
	"not.found":              {"見つかりません。", "Not found."},
	"forbidden":              {"この操作の権限がありません。", "You are not allowed to do this."},
	"csrf":                   {"フォームの有効期限が切れました。画面を読み込み直してください。", "The form expired; reload the page and try again."},
	"failed":                 {"操作できませんでした", "The action failed"},
	"role":                   {"権限", "Role"},
	"role.operator":          {"運用者（全団体）", "Operator (all tenants)"},
	"role.admin":             {"団体管理者", "Tenant admin"},
	"role.viewer":            {"団体閲覧者", "Tenant viewer"},
	"lang.switch":            {"English", "日本語"},
	"yes":                    {"はい", "yes"},
	"no":                     {"いいえ", "no"},
	"skip":                   {"本文へ移動", "Skip to content"},
	"quarantine":             {"隔離メール", "Quarantined mail"},
	"q.note":                 {"隔離されたメールの送信者・件名・本文（テキストのみ）を確認し、理由を記入して配送または削除できます。HTMLメールは表示しません。", "See quarantined mail (sender, subject, text only) and release or delete it with a reason. Mail HTML is never rendered."},
	"q.from":                 {"差出人", "From"},
	"q.to":                   {"宛先", "To"},
	"q.subject":              {"件名", "Subject"},
	"q.reason":               {"隔離理由", "Reason"},
	"q.attachments":          {"添付ファイル", "Attachments"},
	"q.headers":              {"ヘッダー", "Header fields"},
	"q.text":                 {"本文（テキスト）", "Text"},
	"q.release":              {"配送する（隔離解除）", "Release (deliver)"},
	"q.delete":               {"削除する", "Delete"},
	"q.why":                  {"理由（必須・監査ログに記録）", "Reason (required, audited)"},
	"q.released":             {"隔離を解除し、配送を依頼しました。", "Released for delivery."},
	"q.released.short":       {"解除済み", "released"},
	"q.held":                 {"隔離中", "held"},
	"q.reason.required":      {"理由を入力してください。", "Please give a reason."},
	"reports":                {"月次報告書", "Monthly reports"},
	"reports.note":           {"月次報告書（検知件数、危険度別の内訳、インシデントの連絡・対応履歴など）をHTMLまたはCSVで取得できます。", "Get the monthly report (detections, by severity, incidents with their contact and response history) as HTML or CSV."},
	"report.month":           {"対象月", "Month"},
	"report.cloud":           {"クラウド全体", "Whole cloud"},
	"report.format":          {"形式", "Format"},
	"report.get":             {"報告書を表示・取得", "Get the report"},
	"report.this":            {"今月（途中経過）", "This month (so far)"},
	"report.last":            {"先月", "Last month"},
	"requests":               {"問い合わせ・依頼", "Requests"},
	"requests.note":          {"SOCへの問い合わせや設定変更の依頼を登録し、ファイルをやり取りできます。更新はメールでお知らせします。設定変更の依頼は翌営業日までに対応します。", "File inquiries and settings-change requests with the SOC and exchange files. Each update is announced by mail. Settings changes are handled by the next business day."},
	"request.new":            {"新しい問い合わせ・依頼", "New request"},
	"request.kind":           {"種別", "Kind"},
	"kind.inquiry":           {"問い合わせ", "Inquiry"},
	"kind.change":            {"設定変更依頼", "Settings-change request"},
	"request.subject":        {"件名", "Subject"},
	"request.body":           {"内容", "Details"},
	"request.files":          {"添付ファイル", "Attachments"},
	"request.files.note":     {"合計 %d MB まで", "up to %d MB in all"},
	"request.send":           {"送信する", "Send"},
	"request.filed":          {"受け付けました。担当者へメールで通知しました。", "Filed. The other side has been told by mail."},
	"request.updated":        {"更新しました。相手方へメールで通知しました。", "Updated. The other side has been told by mail."},
	"request.bad":            {"入力内容を確認してください。", "Please check the input."},
	"request.comment":        {"コメント・ファイルを追加", "Add a comment or files"},
	"request.comments":       {"やり取り", "Thread"},
	"request.due":            {"対応期限", "Due"},
	"request.by":             {"登録者", "Filed by"},
	"request.updated.at":     {"最終更新", "Updated"},
	"request.status.change":  {"状態を変更（運用者）", "Change the status (operators)"},
	"request.status.keep":    {"変更しない", "keep"},
	"request.search":         {"キーワード", "Keyword"},
	"side.tenant":            {"団体", "tenant"},
	"side.operator":          {"SOC", "SOC"},
	"status.received":        {"受付", "Received"},
	"status.in_progress":     {"対応中", "In progress"},
	"status.waiting":         {"回答待ち", "Waiting for you"},
	"status.done":            {"完了", "Done"},
	"upload.too.large":       {"ファイルが大きすぎます。添付ファイルは合計 %d MB までです。ファイルを分けるか圧縮して送ってください。", "The files are too large: at most %d MB in all. Split or compress them."},
	"upload.bad.name":        {"このファイル名は使えません。フォルダ名や制御文字を含まない名前に変えてください。", "This file name is not accepted. Use a name without folders or control characters."},
	"size":                   {"サイズ", "Size"},
	"attached":               {"添付", "file"},
	"sites.title":            {"公開Webサイトの通信量", "Public web site traffic"},
	"sites.note":             {"公開Webサイトごとの日別のアクセス数、転送量、キャッシュヒット率、防御した攻撃の数です。ページの更新がすぐに反映されない場合は、キャッシュを削除してください。", "Daily requests, bytes, cache hit ratio and attacks blocked per public site. Purge the cache when an updated page does not show yet."},
	"day":                    {"日付", "Day"},
	"requests.count":         {"アクセス数", "Requests"},
	"bytes":                  {"転送量", "Bytes"},
	"cache.hit":              {"キャッシュヒット率", "Cache hit ratio"},
	"attacks":                {"防御した攻撃", "Attacks blocked"},
	"days.total":             {"期間合計", "Total"},
	"purge":                  {"キャッシュを削除", "Purge the cache"},
	"purge.url":              {"URL（このページのみ）", "URL (this page only)"},
	"purge.prefix":           {"このURL以下すべて", "Everything under this URL"},
	"purge.target":           {"対象URL", "URL"},
	"purge.done":             {"キャッシュを削除しました（%s 件）。", "Cache purged (%s entries)."},
	"purge.bad":              {"URLを確認してください（例: https://www.city.example.jp/news/）。", "Please check the URL (e.g. https://www.city.example.jp/news/)."},
	"detections.by.severity": {"検知件数（危険度別、全機能）", "Detections by severity (all functions)"},
	"events.count":           {"イベント数", "Events"},
}

// lang is "ja" or "en", from the cookie; Japanese is the default.
func lang(r *http.Request) string {
	if ck, err := r.Cookie(cookieLang); err == nil && ck.Value == "en" {
		return "en"
	}
	return "ja"
}

func tr(l, key string) string {
	m, ok := messages[key]
	if !ok {
		return key
	}
	if l == "en" {
		return m[1]
	}
	return m[0]
}

func stateLabel(l string, s incident.State) string {
	if l == "en" {
		return string(s)
	}
	return s.Japanese()
}

func severityLabel(l string, s detect.Severity) string {
	if l == "en" {
		return s.String()
	}
	return s.Japanese()
}

func reasonLabel(l, r string) string {
	ja := map[string]string{"virus": "ウイルス", "spam": "迷惑メール", "attachment": "添付ファイル", "ad": "広告", "policy": "ポリシー", "sanitized": "無害化（原本）"}
	if v, ok := ja[r]; ok && l != "en" {
		return v
	}
	return r
}

func kindLabel(l, kind string) string {
	ja := map[string]string{
		incident.KindOpened: "発生", incident.KindEvents: "イベント追加", incident.KindSeverity: "危険度の見直し",
		incident.KindState: "状態変更", incident.KindNotify: "通知", incident.KindNotifyFailed: "通知失敗",
		incident.KindAck: "受領確認", incident.KindAckRefused: "受領確認の拒否", incident.KindDeadlineMissed: "期限超過",
		incident.KindNote: "メモ", incident.KindAssign: "担当者設定", KindContact: "連絡記録", KindResponse: "対応記録",
	}
	if l == "en" {
		return kind
	}
	if v, ok := ja[kind]; ok {
		return v
	}
	return kind
}
