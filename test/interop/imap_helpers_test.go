package interop

// Helpers of the IMAP interop tests: every interop server also listens
// for IMAP and IMAPS, and a go-imap v2 client logs in to it.

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

func init() {
	// startLoft waits for every listener in this list to be printed.
	listeners = append(listeners, "imap", "imaps")
}

// imapTimeout bounds one interop client run.
const imapTimeout = 60 * time.Second

// dialIMAP logs in with go-imap v2's client (plaintext on loopback, as the
// default auth.plaintext = "loopback" allows).
func dialIMAP(t *testing.T, p *loftProc, user, pass string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(p.Addrs["imap"], opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}
