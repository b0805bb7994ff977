package results

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Two long-lived appenders (two collectors) share one CSV. Each test's rows go through
// one or both of them, sometimes more than once with the claim as first stored (a crash
// after the append and before the done claim was recorded), sometimes with the done
// claim: every test's rows end up in the file exactly once, where its claim says.
func TestCSVAppenderTwoWritersExactlyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), CSVFile)
	apps := []*CSVAppender{NewCSVAppender(path, NoSync()), NewCSVAppender(path, NoSync())}
	rng := rand.New(rand.NewPCG(1, 2))
	const tests = 400
	type test struct {
		rows     []Row
		prepared CSVClaim
		done     CSVClaim
	}
	all := make([]*test, tests)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w, app := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for round := 0; round < 60; round++ {
				// A batch of up to 20 tests, new ones and repeats.
				var batch []CSVAppend
				var which []*test
				mu.Lock()
				for range 1 + rng.IntN(20) {
					i := rng.IntN(tests)
					tc := all[i]
					if tc == nil {
						rows := block(fmt.Sprintf("t%03d", i), 1+i%3)
						claim, err := prepareCSV(path, rows)
						if err != nil {
							t.Error(err)
						}
						tc = &test{rows: rows, prepared: claim}
						all[i] = tc
					}
					claim := tc.prepared
					if tc.done.Done && rng.IntN(2) == 0 {
						claim = tc.done
					}
					batch = append(batch, CSVAppend{Payload: EncodeCSV(tc.rows), Claim: claim})
					which = append(which, tc)
				}
				mu.Unlock()
				if err := app.AppendOnce(batch); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for k, e := range batch {
					if e.Err != nil || !e.Done.Done {
						t.Errorf("entry %d: %+v", k, e)
					}
					which[k].done = e.Done
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	_ = rng
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for i, tc := range all {
		if tc == nil {
			continue
		}
		seen++
		p := encodeCSV(CSVRecords(tc.rows))
		if n := bytes.Count(data, p); n != 1 {
			t.Errorf("test %d: rows appear %d times", i, n)
		}
		if ok, _ := bytesAt(path, tc.done.Offset, p); !ok {
			t.Errorf("test %d: done claim offset %d does not point at its rows", i, tc.done.Offset)
		}
	}
	if seen < tests/2 {
		t.Fatalf("only %d tests exercised", seen)
	}
	checkBlocksAnySize(t, readCSV(t, path))
}

// checkBlocksAnySize checks that every test's rows are contiguous.
func checkBlocksAnySize(t *testing.T, recs [][]string) {
	t.Helper()
	done := map[string]bool{}
	prev := ""
	for _, r := range recs {
		if r[1] != prev {
			if done[r[1]] {
				t.Fatalf("rows of %s appear in two places", r[1])
			}
			done[prev] = true
			prev = r[1]
		}
	}
}

// An appender that knows the file learns of a rebuild (replaced by rename, or cut
// shorter) and searches the new file rather than trusting its memory.
func TestCSVAppenderFileReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), CSVFile)
	app := NewCSVAppender(path, NoSync())
	a, b := block("a", 2), block("b", 2)
	ca, _ := prepareCSV(path, a)
	batch := []CSVAppend{{Payload: EncodeCSV(a), Claim: ca}}
	if err := app.AppendOnce(batch); err != nil || !batch[0].Wrote {
		t.Fatalf("first append: %+v %v", batch[0], err)
	}
	done := batch[0].Done
	// Rebuilt with b first: a is found at its new place, not written again.
	if err := WriteCSV(path, append(append([]Row{}, b...), a...)); err != nil {
		t.Fatal(err)
	}
	batch = []CSVAppend{{Payload: EncodeCSV(a), Claim: done}}
	if err := app.AppendOnce(batch); err != nil || batch[0].Wrote || batch[0].Done.Offset == done.Offset {
		t.Fatalf("after rebuild: %+v %v", batch[0], err)
	}
	// Rebuilt without a: the prepared claim's retry appends it again.
	if err := WriteCSV(path, b); err != nil {
		t.Fatal(err)
	}
	batch = []CSVAppend{{Payload: EncodeCSV(a), Claim: ca}}
	if err := app.AppendOnce(batch); err != nil || !batch[0].Wrote {
		t.Fatalf("after rebuild without the rows: %+v %v", batch[0], err)
	}
	recs := readCSV(t, path)
	if len(recs) != 4 {
		t.Fatalf("%d rows, want 4", len(recs))
	}
	// A mismatched entry fails alone; its neighbours are written.
	c := block("c", 1)
	cc, _ := prepareCSV(path, c)
	batch = []CSVAppend{{Payload: EncodeCSV(block("changed", 1)), Claim: cc}, {Payload: EncodeCSV(c), Claim: cc}}
	if err := app.AppendOnce(batch); err != nil || batch[0].Err == nil || !batch[1].Wrote {
		t.Fatalf("mismatch: %+v %v", batch, err)
	}
}

// BenchmarkCSVAppender appends batches of 256 tests' rows with one long-lived appender,
// each test's claim prepared before the batch (as a collector does).
func BenchmarkCSVAppender(b *testing.B) {
	path := filepath.Join(b.TempDir(), CSVFile)
	app := NewCSVAppender(path, NoSync())
	n := 0
	for b.Loop() {
		batch := make([]CSVAppend, 256)
		for i := range batch {
			p := EncodeCSV(perfRows("r", fmt.Sprintf("t%d", n)))
			n++
			claim, err := app.Prepare(p)
			if err != nil {
				b.Fatal(err)
			}
			batch[i] = CSVAppend{Payload: p, Claim: claim}
		}
		if err := app.AppendOnce(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/test")
}

// bytesAt reports whether the file at path holds want at off.
func bytesAt(path string, off int64, want []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return bytesAtFile(f, off, want)
}
