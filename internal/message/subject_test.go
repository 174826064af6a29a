package message

import (
	"slices"
	"testing"
)

// TestBaseSubject follows RFC 5256 §2.1 step by step, and its reply or
// forward marks (REFERENCES).
func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		in, base string
		reply    bool
	}{
		{"Hello", "Hello", false},
		{"  Re:  Hello  ", "Hello", true},
		{"RE: re: FWD: hello", "hello", true},
		{"Fw: hello", "hello", true},
		{"Re[2]: hello", "hello", true},
		{"Re [list]: hello", "hello", true},
		{"[list] Re: hello", "hello", true},
		{"[list] hello", "hello", false},
		{"[list]", "[list]", false},            // the blob is the subj-base
		{"[a][b] hello", "hello", false},       // blobs one at a time
		{"hello (fwd)", "hello", true},         // subj-trailer
		{"hello (FWD) (fwd)  ", "hello", true}, // repeated
		{"[fwd: hello]", "hello", true},        // subj-fwd
		{"[Fwd: Re: [x] hello (fwd)]", "hello", true},
		{"Re-org plan", "Re-org plan", false},   // no colon: not a leader
		{"Reply: hello", "Reply: hello", false}, // "re" must be followed by ":"
		{"Re:", "", true},
		{"\tRe:\thello\r\n\tworld", "hello world", true},
		{"", "", false},
	} {
		base, reply := BaseSubject(tc.in)
		if base != tc.base || reply != tc.reply {
			t.Errorf("BaseSubject(%q) = %q, %v; want %q, %v", tc.in, base, reply, tc.base, tc.reply)
		}
	}
}

// TestCollationKey checks i;unicode-casemap (RFC 5051): titlecase, then
// decomposition, so that case and precomposed forms collate equal.
func TestCollationKey(t *testing.T) {
	eq := [][2]string{
		{"hello", "HELLO"},
		{"Émile", "e\u0301mile"},
		{"ǆ", "Ǆ"},           // titlecase of a digraph: "ǅ", decomposed "Dž"
		{"ﬁne", "FINE"},      // compatibility decomposition of the ligature
		{"straße", "STRAßE"}, // ß has no simple titlecase: stays ß
	}
	for _, p := range eq {
		if a, b := CollationKey(p[0]), CollationKey(p[1]); a != b {
			t.Errorf("%q and %q: keys %q and %q differ", p[0], p[1], a, b)
		}
	}
	if !(CollationKey("apple") < CollationKey("Banana") && CollationKey("") < CollationKey("a")) {
		t.Error("order")
	}
}

func TestMsgIDs(t *testing.T) {
	got := MsgIDs(` <"01KF8JCEOCBS0045PS"@xxx.yyy.com> (comment) <a@b>, <no-at> <x@> <@y> <c\@d@e>`)
	want := []string{"<01KF8JCEOCBS0045PS@xxx.yyy.com>", "<a@b>", "<c@d@e>"}
	if !slices.Equal(got, want) {
		t.Errorf("MsgIDs = %q, want %q", got, want)
	}
}
