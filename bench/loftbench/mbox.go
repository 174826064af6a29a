// This file turns an mbox into the messages loftbench sends: split on From_ lines, unescaped,
// CRLF line endings, and pre-encoded once into their dot-stuffed DATA form so that the load
// loop only copies bytes and the generator is never the bottleneck.

package main

import (
	"bytes"
	"fmt"
	"os"
)

// message is one message ready to send.
type message struct {
	// wire is the DATA payload: the message with CRLF line endings, dot-stuffed
	// (RFC 5321 §4.5.2), ending in the terminating ".\r\n".
	wire []byte
	// size is the message's own size in bytes (CRLF, not stuffed, no terminator): what a
	// server stores and what the MB/s figure counts.
	size int
}

// loadMbox reads an mbox file and returns its messages in DATA form.
func loadMbox(path string) ([]message, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw := splitMbox(data)
	if len(raw) == 0 {
		return nil, fmt.Errorf("%s: no messages (no line starts with \"From \")", path)
	}
	msgs := make([]message, len(raw))
	for i, m := range raw {
		msgs[i] = message{wire: dotStuff(m), size: len(m)}
	}
	return msgs, nil
}

var (
	fromLine    = []byte("From ")
	escapedFrom = []byte(">From ")
)

// splitMbox splits an mbox into its messages. A message starts at every line that begins with
// "From " (the From_ line, which is dropped); text before the first From_ line is ignored.
// In each message a line beginning with ">From " loses its '>' (the mboxo escape), every line
// ends in CRLF (bare LF becomes CRLF, a missing final newline is added), and the one empty
// line that separates a message from the next From_ line is removed, as mbox readers do.
func splitMbox(data []byte) [][]byte {
	var msgs [][]byte
	var cur []byte // the message being built; nil before the first From_ line
	inMsg := false
	finish := func() {
		if !inMsg {
			return
		}
		// The mbox writer put an empty line before the next From_ line; it is not the message's.
		if bytes.HasSuffix(cur, []byte("\r\n\r\n")) || string(cur) == "\r\n" {
			cur = cur[:len(cur)-2]
		}
		msgs = append(msgs, cur)
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if bytes.HasPrefix(line, fromLine) {
			finish()
			cur, inMsg = make([]byte, 0, 16<<10), true
			continue
		}
		if !inMsg {
			continue
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if bytes.HasPrefix(line, escapedFrom) {
			line = line[1:]
		}
		cur = append(cur, line...)
		cur = append(cur, '\r', '\n')
	}
	finish()
	return msgs
}

// dotStuff returns msg (CRLF line endings) as a DATA payload: every line that starts with '.'
// gets another '.' in front (RFC 5321 §4.5.2), a final CRLF is added if msg lacks one, and
// the terminating ".\r\n" follows.
func dotStuff(msg []byte) []byte {
	out := make([]byte, 0, len(msg)+len(msg)/512+5)
	for len(msg) > 0 { // at the start of a line
		if msg[0] == '.' {
			out = append(out, '.')
		}
		i := bytes.IndexByte(msg, '\n')
		if i < 0 {
			out = append(out, msg...)
			break
		}
		out = append(out, msg[:i+1]...)
		msg = msg[i+1:]
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return append(out, '.', '\r', '\n')
}
