//go:build race

package waf_test

// raceOn: the corpus runners take a sample under the race detector
// (Coraza is ~10× slower there); the full runs happen without -race.
const raceOn = true
