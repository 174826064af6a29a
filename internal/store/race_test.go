//go:build race

package store

// raceEnabled: the race detector slows SQLite's full-text indexing (C
// translated to Go) so much that a test indexing every Unicode character
// takes many minutes.
const raceEnabled = true
