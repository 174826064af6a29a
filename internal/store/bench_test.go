package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// benchMessages is the standard message set when $LOFT_MBOX names it
// (shared/bench/gen_mbox.py), else synthetic 12 KB messages.
func benchMessages(b *testing.B) [][]byte {
	if path := os.Getenv("LOFT_MBOX"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		var msgs [][]byte
		for _, m := range bytes.Split(data, []byte("\nFrom ")) {
			if i := bytes.IndexByte(m, '\n'); i >= 0 {
				msgs = append(msgs, bytes.ReplaceAll(m[i+1:], []byte("\n"), []byte("\r\n")))
			}
		}
		return msgs
	}
	msg := []byte("Subject: bench\r\nFrom: a@example.org\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 150))
	return [][]byte{msg}
}

// BenchmarkDeliver measures durable deliveries through the store alone, 16
// at a time (as 16 LMTP connections would), to 100 accounts.
//
//	LOFT_MBOX=/tmp/bench/data/bench.mbox go test -run - -bench Deliver ./internal/store
func BenchmarkDeliver(b *testing.B) {
	msgs := benchMessages(b)
	s, err := Open(context.Background(), Options{Dir: b.TempDir(), DefaultQuota: Unlimited})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 1; i <= 100; i++ {
		if _, err := s.CreateAccount(context.Background(), fmt.Sprintf("bench%d@bench.test", i), "x", nil); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	var bytesIn atomic.Int64
	b.SetParallelism(8) // × GOMAXPROCS (2 here) = 16 deliveries at once
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			m := msgs[int(i)%len(msgs)]
			bytesIn.Add(int64(len(m)))
			res, err := s.Deliver(context.Background(), bytes.NewReader(m),
				DeliverOptions{Recipients: []string{fmt.Sprintf("bench%d@bench.test", i%100+1)}})
			if err != nil || res[0].Err != nil {
				b.Error(err, res)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.SetBytes(bytesIn.Load() / int64(max(b.N, 1)))
}
