package imap

import (
	"strings"
	"testing"
)

// Odd and hostile commands get a tagged answer and the session goes on.
func TestOddCommandsDoNotBreakSession(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(sampleMsg)
	ts.deliver(multipartMsg)
	c := ts.login(false)
	selectInbox(c, 2)
	for _, cmd := range []string{
		"FETCH 0 FLAGS", "FETCH 1:0 FLAGS", "FETCH * (BODY[0])", "FETCH 1 BODY[1.2.3.4.5.6]", "FETCH 2 BODY[3.1.1.1]",
		"FETCH 2 BINARY[3]", "FETCH 2 BINARY.SIZE[9]", "FETCH 2 BODY[HEADER.FIELDS ()]", "FETCH 2 BODY[]<5.0>",
		"FETCH 2 BODY[]<999999.10>", "FETCH 2 (", "FETCH 2 ()", "FETCH 4294967296 FLAGS", "FETCH 1,2,1:2,*:1 UID",
		"UID FETCH 4294967295:1 UID", "SEARCH", "SEARCH NOT", "SEARCH OR ALL", "SEARCH " + strings.Repeat("(", 60) + "ALL" + strings.Repeat(")", 60),
		"SEARCH HEADER", "SEARCH LARGER x", "SEARCH SINCE 32-Jan-2020", "SEARCH UID $", "SEARCH 1:* $",
		"STORE * +FLAGS ()", "STORE 1 FLAGS (\\Bogus)", "COPY 1", `COPY 1 ""`, "MOVE $ Trash", "EXPUNGE x", "UID EXPUNGE",
		"LIST", `LIST "" (`, `LIST (BOGUS) "" *`, `LIST "" * RETURN (STATUS ())`, `LIST "" "*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*%*"`,
		"STATUS", "CREATE", `CREATE "a/"`, "RENAME INBOX", "ENABLE", "ENABLE FOO", "ID (", "ID (\"a\")",
		"GETQUOTA", "GETQUOTAROOT Nope", "APPEND", "APPEND INBOX", "APPEND INBOX (\\Seen) \"x\" {1}",
		"IDLE x", "NOOP x", "CHECK", "UID", "UID UID FETCH 1 UID", "AUTHENTICATE",
	} {
		res := c.run("z " + cmd)
		last := res[len(res)-1]
		if !strings.HasPrefix(last, "z OK") && !strings.HasPrefix(last, "z NO") && !strings.HasPrefix(last, "z BAD") {
			t.Fatalf("%s: %q", cmd, res)
		}
	}
	c.cmd("y NOOP", "y OK NOOP completed")
}
