package metrics

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"
)

// repeatReader yields a pattern again and again up to n bytes.
type repeatReader struct {
	pat  []byte
	n, i int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.n > 0 {
		c := copy(p[k:min(len(p), k+r.n)], r.pat[r.i:])
		r.i = (r.i + c) % len(r.pat)
		k += c
		r.n -= c
	}
	return k, nil
}

// A client log whose lines end in a bare \r (a progress bar) is read in linear time: 200
// MB in seconds (the search for \n used to rescan the whole buffer at every \r: 8 MB took
// 16 s), with the lines still split at \r.
func TestBareCRLogIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 200 MB")
	}
	const size = 200 << 20
	start := time.Now()
	blocks, err := ReadBench(&repeatReader{pat: []byte("progress 12%|###   |\r"), n: size})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("200 MB of \\r-ended lines: %v, %d blocks", took, len(blocks))
	if took > 20*time.Second {
		t.Errorf("took %v", took)
	}
	// \r still splits lines, and lines are counted by \n.
	ls := newLineScanner(bytes.NewReader([]byte("a\rb\r\nc\n")))
	defer ls.release()
	var toks []string
	var lines []int
	for ls.Scan() {
		toks, lines = append(toks, string(ls.Bytes())), append(lines, ls.Line())
	}
	if fmt.Sprint(toks, lines) != "[a b  c] [1 1 1 2]" {
		t.Errorf("tokens %q lines %v", toks, lines)
	}
}
