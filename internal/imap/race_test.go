//go:build race

package imap

// raceEnabled: the race detector slows SQLite's full-text indexing (C
// translated to Go) so much that the standard set takes many minutes.
const raceEnabled = true
