package config

// WAFEngine configures the WAF's inspection engine (waf.CRSEngine: OWASP
// CRS v4 on Coraza, one instance shared by all sites, plus seccloud's
// decoding layer). Every field's zero value is the package's default.
type WAFEngine struct {
	// Off runs the sites without inspection (not recommended).
	Off bool `yaml:"off"`
	// ParanoiaLevel (1-4), AnomalyThreshold and DetectOnly are the
	// defaults of sites that do not set their own; 0 / false mean PL1,
	// threshold 5, blocking.
	ParanoiaLevel    int  `yaml:"paranoia_level"`
	AnomalyThreshold int  `yaml:"anomaly_threshold"`
	DetectOnly       bool `yaml:"detect_only"`
	// MaxBodyKB is the largest request body inspected; larger bodies get
	// 413 (0 = 1024 KiB).
	MaxBodyKB int64 `yaml:"max_body_kb"`
	// FailOpen proxies requests the engine could not inspect (default:
	// 503).
	FailOpen bool `yaml:"fail_open"`
	// RulesFile is a file of extra SecLang rules loaded after CRS
	// (relative to the config file); empty = none.
	RulesFile string `yaml:"rules_file"`
}

// WAFExclusion switches a rule off for a site: rule_id (with rule_id_to,
// a range), optionally only for target ("ARGS:comment") and/or under
// path (a prefix).
type WAFExclusion struct {
	RuleID   int    `yaml:"rule_id"`
	RuleIDTo int    `yaml:"rule_id_to"`
	Target   string `yaml:"target"`
	Path     string `yaml:"path"`
}
