package pop3

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"loft/internal/auth"
	"loft/internal/certs"
	"loft/internal/config"
	"loft/internal/store"
)

// FuzzPOP3Session feeds a client's whole side of a session to a real
// session over an in-memory connection: the server must answer, never
// panic, and end when the client does. The seeds (testdata/fuzz) are
// sessions of real clients: Thunderbird, fetchmail, getmail, Apple Mail,
// Outlook, and a few hostile ones.
func FuzzPOP3Session(f *testing.F) {
	for _, s := range []string{
		"CAPA\r\nUSER fuzz@example.org\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 0\r\nDELE 1\r\nRSET\r\nNOOP\r\nQUIT\r\n",
		"AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00fuzz@example.org\x00secret")) + "\r\nUIDL 1\r\nLIST 2\r\nQUIT\r\n",
		"AUTH LOGIN\r\n" + base64.StdEncoding.EncodeToString([]byte("fuzz@example.org")) + "\r\n" + base64.StdEncoding.EncodeToString([]byte("secret")) + "\r\nSTAT\r\nQUIT\r\n",
		"AUTH SCRAM-SHA-256 " + base64.StdEncoding.EncodeToString([]byte("n,,n=fuzz@example.org,r=abcdefgh")) + "\r\n*\r\nQUIT\r\n",
		"USER nobody@example.org\r\nPASS x\r\nUSER fuzz@example.org\r\nPASS y\r\nAUTH PLAIN =\r\n",
		"STLS\r\nUSER x\r\n",
		"TOP 1 -1\r\nRETR 99999999999999999999\r\nLIST 0\r\nDELE\r\n\r\n \r\nAUTH\r\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, DefaultQuota: store.Unlimited})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	// Cheap hashes, so that the fuzzer spends its time on the protocol
	// (instrumented argon2id at its real cost takes seconds).
	cheapHash := func(password string) string {
		salt := []byte("fuzzsaltfuzzsalt")
		key := argon2.IDKey([]byte(password), salt, 1, 8, 1, 32)
		return fmt.Sprintf("$argon2id$v=19$m=8,t=1,p=1$%s$%s",
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	}
	hash := cheapHash("secret")
	scram, _ := auth.HashSCRAM("secret")
	a, err := st.CreateAccountWithCredentials(context.Background(), "fuzz@example.org",
		store.Credentials{PasswordHash: hash, SCRAMSHA256: scram}, nil)
	if err != nil {
		f.Fatal(err)
	}
	tlsConfig, err := certs.Config("", "", dir, "localhost")
	if err != nil {
		f.Fatal(err)
	}
	srv := New(Options{
		Store: st, TLS: tlsConfig, Hostname: "pop.test", Plaintext: config.PlaintextAlways, MarkSeen: true,
		Auth: auth.NewAuthenticator(auth.AuthenticatorOptions{
			Accounts:  st,
			Throttle:  auth.NewThrottle(auth.ThrottleOptions{FailureDelay: time.Microsecond, MaxFailureDelay: time.Microsecond}),
			DummyHash: cheapHash("dummy"),
		}),
		IdleTimeout: time.Second, CommandTimeout: time.Second,
	})
	f.Cleanup(func() { srv.Close() })
	refill := func() {
		mb, err := st.Mailbox(context.Background(), a.ID, "INBOX")
		if err == nil && mb.Messages < 3 {
			for _, m := range []string{msgA, msgB, "Subject: no body"} {
				st.Deliver(context.Background(), strings.NewReader(m), store.DeliverOptions{Recipients: []string{a.Address}})
			}
		}
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		refill()
		server, client := net.Pipe()
		sess := srv.newSession(server)
		done := make(chan struct{})
		go func() {
			sess.serve()
			close(done)
		}()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		client.Write(input)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("session did not end after the client left")
		}
	})
}
