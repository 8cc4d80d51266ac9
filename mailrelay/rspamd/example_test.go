package rspamd_test

import (
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/rspamd"
)

// rspamd as the relay's spam scorer: each tenant's recipients are
// scored with that tenant's rspamd settings (Settings-ID = tenant id)
// and against that tenant's spam levels; rspamd down defers mail (451).
func Example() {
	rs, err := rspamd.New(rspamd.Config{URL: "http://127.0.0.1:11333", TenantSettings: true})
	if err != nil {
		panic(err)
	}
	var cfg mailrelay.Config
	cfg.Content.Scorer = rs
	cfg.Content.ScorerDown = mailrelay.FallbackTempFail
	// ... Hostname, Directory, Queue, then mailrelay.New(cfg)
}
