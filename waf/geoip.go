package waf

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// CountryLookup maps an address to its ISO 3166-1 alpha-2 country code.
type CountryLookup interface {
	Country(netip.Addr) (code string, ok bool)
}

// GeoIPConfig configures the optional country database. The zero value
// has none: country rules are then refused by New.
type GeoIPConfig struct {
	// File is a MaxMind-format (.mmdb) country database, e.g. GeoLite2
	// Country or DB-IP Country Lite, supplied by the operator.
	File string
	// Lookup, when set, is used instead of File (integrators with their
	// own database).
	Lookup CountryLookup
}

// CountryRules are a site's country rules. Deny wins; when Allow is not
// empty only its countries are let in. Codes are ISO 3166-1 alpha-2
// ("JP"); addresses the database does not know are let in (loopback,
// private ranges, new allocations).
type CountryRules struct {
	Allow, Deny []string
}

func (c CountryRules) empty() bool { return len(c.Allow) == 0 && len(c.Deny) == 0 }

// checkCountry applies the site's country rules.
func (s *Server) checkCountry(so *siteConfig, client netip.Addr) *guardDecision {
	cr := so.opts.Countries
	if cr.empty() || s.geo == nil {
		return nil
	}
	cc, ok := s.geo.Country(client)
	if !ok {
		return nil
	}
	for _, d := range cr.Deny {
		if strings.EqualFold(d, cc) {
			return deny(pageGuardDenied, "waf-country-deny", "source country "+cc+" is denied")
		}
	}
	if len(cr.Allow) == 0 {
		return nil
	}
	for _, a := range cr.Allow {
		if strings.EqualFold(a, cc) {
			return nil
		}
	}
	return deny(pageGuardDenied, "waf-country-allow", "source country "+cc+" is not in the allow list")
}

// mmdb is a CountryLookup over a MaxMind-format database file (GeoLite2
// / GeoIP2 Country or City, DB-IP Country Lite, ...): the record's
// country.iso_code, else registered_country.iso_code. Safe for concurrent
// use (the reader is read-only, memory-mapped).
type mmdb struct{ r *maxminddb.Reader }

type mmdbCountry struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

func (m *mmdb) Country(a netip.Addr) (string, bool) {
	var rec mmdbCountry
	res := m.r.Lookup(a.Unmap())
	if !res.Found() || res.Decode(&rec) != nil {
		return "", false
	}
	if rec.Country.ISOCode != "" {
		return rec.Country.ISOCode, true
	}
	return rec.RegisteredCountry.ISOCode, rec.RegisteredCountry.ISOCode != ""
}

func (m *mmdb) Close() error { return m.r.Close() }

func openMMDB(file string) (*mmdb, error) {
	r, err := maxminddb.Open(file)
	if err != nil {
		return nil, fmt.Errorf("waf: Config.GeoIP.File: %w", err)
	}
	return &mmdb{r: r}, nil
}
