//go:build race

package testproc

// Race is true when this program was built with the race detector: a test that builds
// the shop's binaries to run them builds them so too (GoBuild). A race-built program
// reports a race it finds on its standard error, and exits 66 instead of 0.
const Race = true
