//go:build race

package gateway

// raceEnabled is whether the tests run under the race detector.
const raceEnabled = true
