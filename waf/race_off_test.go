//go:build !race

package waf_test

const raceOn = false
