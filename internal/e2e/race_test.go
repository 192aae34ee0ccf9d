//go:build race

package e2e

// raceEnabled builds the rekey binary with the race detector when the tests
// run with it, so the subprocess is checked too and the build reuses the
// tests' compiled packages.
const raceEnabled = true
