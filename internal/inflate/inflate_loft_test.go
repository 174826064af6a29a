package inflate

import (
	"bytes"
	"compress/flate"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// Two commands as zlib deflates them with Z_PARTIAL_FLUSH after each, as
// isync does (Python: zlib.compressobj(6, zlib.DEFLATED, -15), then
// compress + flush(zlib.Z_PARTIAL_FLUSH)). The second chunk's last bits
// are still in the sender's buffer: no more input comes, yet each
// command must be readable.
func TestPartialFlushYieldsEachBlock(t *testing.T) {
	chunks := []string{"3256f073f4750d0e707476e5e50208", "20138560571f57e710054f3f27ff085e2e8000"}
	want := []string{"3 NAMESPACE\r\n", "4 SELECT INBOX\r\n"}
	pr, pw := io.Pipe()
	defer pw.Close()
	r := NewReader(pr)
	for i, c := range chunks {
		data, _ := hex.DecodeString(c)
		go pw.Write(data)
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, len(want[i]))
			n, err := io.ReadFull(r, buf)
			if err != nil {
				t.Error(err)
			}
			got <- string(buf[:n])
		}()
		select {
		case g := <-got:
			if g != want[i] {
				t.Fatalf("chunk %d: %q, want %q", i, g, want[i])
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("chunk %d: no data without more input", i)
		}
	}
}

// Whatever compress/flate writes, this reads back exactly.
func TestRoundTripWithCompressFlate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 100, 70000, 300000} {
		for _, level := range []int{flate.NoCompression, flate.BestSpeed, 6, flate.BestCompression, flate.HuffmanOnly} {
			data := make([]byte, size)
			for i := range data {
				data[i] = "abcdefgh \r\n"[rng.IntN(11)]
				if rng.IntN(50) == 0 {
					data[i] = byte(rng.IntN(256))
				}
			}
			var buf bytes.Buffer
			w, _ := flate.NewWriter(&buf, level)
			for off := 0; off < size; off += 4096 {
				w.Write(data[off:min(off+4096, size)])
				if rng.IntN(3) == 0 {
					w.Flush()
				}
			}
			w.Close()
			got, err := io.ReadAll(NewReader(&buf))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d level %d: %d bytes back, err %v", size, level, len(got), err)
			}
		}
	}
}
