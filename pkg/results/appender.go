package results

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// CSVAppend is one test's rows in a batch given to CSVAppender.AppendOnce: its claim as
// stored before (in), and the completed claim and whether it was written (out).
type CSVAppend struct {
	Payload CSVPayload
	Claim   CSVClaim

	Done  CSVClaim
	Wrote bool
	Err   error // this entry's own failure (its rows do not match its claim)
}

// maxOwn bounds how many appends (its own and others') a CSVAppender remembers; past
// that it forgets them and reads the file back like a newcomer.
const maxOwn = 1 << 16

// CSVAppender appends claimed rows to one CSV file, many tests under one lock and one
// write. It remembers what it appended itself, so finding out whether a prepared claim's
// rows are already in the file reads back only what other writers appended since (or,
// the first time, what was there before it looked). A file replaced under it (a replay
// rebuilds the CSV by rename) or cut shorter is read afresh.
type CSVAppender struct {
	path string
	opts options

	mu      sync.Mutex
	known   bool
	dev     uint64
	ino     uint64
	size    int64            // the file's size when this appender last held the lock
	horizon int64            // bytes before it were there when it first looked
	foreign [][2]int64       // later ranges other writers appended
	own     map[string]int64 // payload digest -> offset, for this appender's appends
}

// NewCSVAppender returns an appender for the CSV at path.
func NewCSVAppender(path string, opts ...Option) *CSVAppender {
	return &CSVAppender{path: path, opts: applyOptions(opts)}
}

// Prepare returns the claim to store before appending p with AppendOnce. Its offset is
// the file's size when this appender last wrote (the file only grows, and a rebuild makes
// the search start over), so that most claims cost no look at the file.
func (a *CSVAppender) Prepare(p CSVPayload) (CSVClaim, error) {
	a.mu.Lock()
	size := int64(-1)
	if a.known {
		size = a.size
	}
	a.mu.Unlock()
	return p.claim(a.path, size)
}

// AppendOnce completes every entry of batch, in order: rows already in the file (as the
// claim says, or found from the claim's offset on) are not written again; the others
// are appended together, in batch order, with one write under the lock. An entry whose
// rows do not match its claim gets ErrClaimMismatch in its Err and nothing written; the
// error returned is the file's.
func (a *CSVAppender) AppendOnce(batch []CSVAppend) error {
	entries, work := a.check(batch)
	if !work {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return withLock(a.path, func() error {
		f, err := os.OpenFile(a.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("results: %w", err)
		}
		defer f.Close()
		size, err := a.look(f)
		if err != nil {
			return err
		}
		from, err := checkDone(f, batch, entries, size)
		if err != nil {
			return err
		}
		idx, err := a.index(f, from, size)
		if err != nil {
			return err
		}
		lead, err := leadIn(f, size)
		if err != nil {
			return err
		}
		buf := a.place(batch, entries, idx, size, lead)
		if len(buf) == len(lead) {
			return nil
		}
		if err := writeLocked(f, buf, a.opts); err != nil {
			a.known = false // what reached the file is unknown
			return err
		}
		a.size = size + int64(len(buf))
		return nil
	})
}

// appendEntry is one append of a batch as AppendOnce works on it.
type appendEntry struct {
	payload []byte // nil: nothing to write or find
	sum     string
	from    int64 // search for the payload at or after this offset
}

// check compares each append's payload with its claim; work is false when nothing is
// left to write or find.
func (a *CSVAppender) check(batch []CSVAppend) (entries []appendEntry, work bool) {
	entries = make([]appendEntry, len(batch))
	for i := range batch {
		e := &batch[i]
		e.Done, e.Wrote, e.Err = e.Claim, false, nil
		p, sum := e.Payload.data, e.Payload.sum
		if int64(len(p)) != e.Claim.Length || sum != e.Claim.SHA256 {
			e.Err = fmt.Errorf("results: %s: %w", a.path, ErrClaimMismatch)
			continue
		}
		if len(p) == 0 {
			e.Done.Done = true
			continue
		}
		entries[i] = appendEntry{payload: p, sum: sum, from: e.Claim.Offset}
		work = true
	}
	return entries, work
}

// checkDone looks for Done claims where they point; a miss (the file was rebuilt)
// searches the whole file. It returns the offset from which the file must be searched.
func checkDone(f *os.File, batch []CSVAppend, entries []appendEntry, size int64) (int64, error) {
	for i := range batch {
		e, en := &batch[i], &entries[i]
		if en.payload == nil || !e.Claim.Done {
			continue
		}
		ok, err := bytesAtFile(f, e.Claim.Offset, en.payload)
		if err != nil {
			return 0, err
		}
		if ok {
			en.payload = nil
			continue
		}
		en.from = 0
	}
	from := size
	for i := range entries {
		if en := &entries[i]; en.payload != nil {
			if en.from < 0 || en.from > size {
				en.from = 0 // the file was rebuilt or cut since the claim
			}
			from = min(from, en.from)
		}
	}
	return from, nil
}

// place finds each append already in the file (its own earlier appends, then the
// index) and puts the others after lead into the returned buffer, completing the claims.
func (a *CSVAppender) place(batch []CSVAppend, entries []appendEntry, idx *lineIndex, size int64, lead []byte) []byte {
	total := len(lead)
	for i := range entries {
		total += len(entries[i].payload)
	}
	buf := append(make([]byte, 0, total), lead...)
	for i := range batch {
		e, en := &batch[i], &entries[i]
		if e.Err != nil {
			continue
		}
		if en.payload == nil {
			e.Done.Done = true
			continue
		}
		done := func(off int64) {
			e.Done = CSVClaim{Offset: off, Length: e.Claim.Length, SHA256: e.Claim.SHA256, Done: true}
		}
		if off, ok := a.own[en.sum]; ok && off >= en.from {
			done(off)
			continue
		}
		if off := idx.find(en.payload, en.from); off >= 0 {
			done(off)
			continue
		}
		off := size + int64(len(buf))
		buf = append(buf, en.payload...)
		a.own[en.sum] = off // a repeat later in this batch finds it
		done(off)
		e.Wrote = true
	}
	return buf
}

// look brings what the appender knows of the file up to date (the caller holds the
// lock) and returns its size.
func (a *CSVAppender) look(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("results: %w", err)
	}
	size := st.Size()
	var dev, ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		dev, ino = uint64(sys.Dev), sys.Ino
	}
	switch {
	case !a.known || dev != a.dev || ino != a.ino || size < a.size || len(a.own)+len(a.foreign) > maxOwn:
		a.known, a.dev, a.ino = true, dev, ino
		a.horizon, a.size = size, size
		a.foreign, a.own = nil, map[string]int64{}
	case size > a.size:
		a.foreign = append(a.foreign, [2]int64{a.size, size})
		a.size = size
	}
	return size, nil
}

// index reads every byte in [from, size) this appender did not write itself and indexes
// its lines by their first line.
func (a *CSVAppender) index(f *os.File, from, size int64) (*lineIndex, error) {
	idx := &lineIndex{}
	if from >= size {
		return idx, nil
	}
	if from < a.horizon {
		if err := idx.add(f, from, a.horizon); err != nil {
			return nil, err
		}
	}
	for _, r := range a.foreign {
		if r[1] <= from {
			continue
		}
		if err := idx.add(f, max(r[0], from), r[1]); err != nil {
			return nil, err
		}
	}
	return idx, nil
}

// lineIndex maps each line start read from the file to its first line's bytes.
type lineIndex struct {
	chunks []chunk
	starts map[string][]lineAt
}

type chunk struct {
	off  int64
	data []byte
}

type lineAt struct {
	chunk int
	pos   int
}

// add reads [from, to) (and the byte before, to tell a line start) and indexes it.
func (x *lineIndex) add(f *os.File, from, to int64) error {
	base := max(from-1, 0)
	data := make([]byte, to-base)
	if _, err := f.ReadAt(data, base); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("results: %s: %w", f.Name(), err)
	}
	if x.starts == nil {
		x.starts = map[string][]lineAt{}
	}
	c := len(x.chunks)
	x.chunks = append(x.chunks, chunk{off: base, data: data})
	for i := int(from - base); i < len(data); {
		if base+int64(i) == 0 || data[i-1] == '\n' {
			end := bytes.IndexByte(data[i:], '\n')
			if end < 0 {
				break // an unfinished line: nothing whole starts here
			}
			line := string(data[i : i+end+1])
			x.starts[line] = append(x.starts[line], lineAt{c, i})
			i += end + 1
			continue
		}
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return nil
}

// find returns the offset of payload at a line start at or after from, or -1.
func (x *lineIndex) find(payload []byte, from int64) int64 {
	end := bytes.IndexByte(payload, '\n')
	if end < 0 || x.starts == nil {
		return -1
	}
	for _, at := range x.starts[string(payload[:end+1])] {
		c := x.chunks[at.chunk]
		off := c.off + int64(at.pos)
		if off >= from && bytes.HasPrefix(c.data[at.pos:], payload) {
			return off
		}
	}
	return -1
}

// bytesAtFile reports whether f holds want at off.
func bytesAtFile(f *os.File, off int64, want []byte) (bool, error) {
	got := make([]byte, len(want))
	n, err := f.ReadAt(got, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("results: %s: %w", f.Name(), err)
	}
	return n == len(want) && bytes.Equal(got, want), nil
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
