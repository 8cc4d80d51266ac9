//go:build race

package waf

// raceInternal: the internal tests take a smaller sample under the race
// detector (Coraza is ~10× slower there).
const raceInternal = true
