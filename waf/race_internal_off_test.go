//go:build !race

package waf

const raceInternal = false
