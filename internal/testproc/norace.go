//go:build !race

package testproc

// Race is true when this program was built with the race detector (see race.go).
const Race = false
