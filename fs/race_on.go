//go:build race

package fs

// raceEnabled: built with -race.
const raceEnabled = true
