package results

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/disaggbench/disaggbench/pkg/fileio"
)

// The CSV is shared by every collector, in this process and in others. Each append holds
// an exclusive flock on a sidecar lock file (path + ".lock") for its whole length and
// writes all its bytes, header included, with one write call, so rows of two appends never
// interleave and the header is written exactly once. The lock lives beside the CSV rather
// than on it so that WriteCSV can replace the file by rename under the same lock.

// Option tunes a writer.
type Option func(*options)

type options struct {
	noSync bool
}

// NoSync skips the fsync after each write. A process crash still loses nothing (the bytes
// are in the page cache); a machine crash may lose the last writes. Use it when throughput
// matters more, e.g. in benchmarks and tests.
func NoSync() Option { return func(o *options) { o.noSync = true } }

func applyOptions(opts []Option) options {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// ErrClaimMismatch means the rows given to CSVAppender.AppendOnce do not encode to the bytes its
// claim describes: the rows changed since the claim was made.
var ErrClaimMismatch = errors.New("csv rows do not match their claim")

// CSVClaim describes one append, so that a retry after a crash can tell whether the rows
// are already in the file. A caller stores it (in its KV claim) twice: once before the
// append, as CSVAppender.Prepare returns it, and once after, as AppendOnce leaves it in CSVAppend.Done.
type CSVClaim struct {
	// Offset is where the rows start once Done; before that, the file's size when the
	// claim was prepared: the rows, if already appended, start at or after it.
	Offset int64 `json:"offset"`
	// Length and SHA256 (hex) describe the appended bytes (the rows, not the header).
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
	// Done says that Offset is the exact position of the appended bytes.
	Done bool `json:"done"`
}

// CSVPayload is one test's rows as they are appended to the CSV, with their digest.
type CSVPayload struct {
	data []byte
	sum  string
}

// EncodeCSV encodes rows once, for a claim and its append.
func EncodeCSV(rows []Row) CSVPayload {
	data := encodeCSV(CSVRecords(rows))
	return CSVPayload{data: data, sum: digest(data)}
}

// claim is the payload's claim with the file's size as its offset: read from the file
// unless size (a size the file had at some point, or -1) is given.
func (p CSVPayload) claim(path string, size int64) (CSVClaim, error) {
	c := CSVClaim{Length: int64(len(p.data)), SHA256: p.sum}
	if size >= 0 {
		c.Offset = size
		return c, nil
	}
	st, err := os.Stat(path)
	switch {
	case err == nil:
		c.Offset = st.Size()
	case !errors.Is(err, os.ErrNotExist):
		return CSVClaim{}, fmt.Errorf("results: %w", err)
	}
	return c, nil
}

// WriteCSV replaces the CSV at path with the header and rows (as a replay rebuilds it):
// the new file is written beside it and renamed over it under the append lock, so
// appenders and readers never see a partial file.
func WriteCSV(path string, rows []Row, opts ...Option) error {
	data := append(bytes.Clone(csvHeaderLine), encodeCSV(CSVRecords(rows))...)
	return withLock(path, func() error { return writeAtomic(path, data, applyOptions(opts)) })
}

// appendLocked appends payload (with the header first if the file is empty) in one write
// and returns the payload's offset. The caller holds the lock.
func appendLocked(path string, payload []byte, o options) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("results: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("results: %w", err)
	}
	lead, err := leadIn(f, st.Size())
	if err != nil {
		return 0, err
	}
	if err := writeLocked(f, append(lead, payload...), o); err != nil {
		return 0, err
	}
	return st.Size() + int64(len(lead)), nil
}

// leadIn is what an append writes before its rows: the header into an empty file, and a
// newline after a line that a write cut short by a crash left without its end, so that
// the cut line stays alone and the new rows stay whole. size is f's size; the caller
// holds the lock.
func leadIn(f *os.File, size int64) ([]byte, error) {
	if size == 0 {
		return bytes.Clone(csvHeaderLine), nil
	}
	last := []byte{0}
	if _, err := f.ReadAt(last, size-1); err != nil {
		return nil, fmt.Errorf("results: %s: %w", f.Name(), err)
	}
	if last[0] != '\n' {
		return []byte{'\n'}, nil
	}
	return nil, nil
}

// writeLocked appends buf with one write call (so that no other append interleaves) and
// syncs it unless NoSync. The caller holds the lock.
func writeLocked(f *os.File, buf []byte, o options) error {
	if _, err := f.Write(buf); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if !o.noSync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("results: %w", err)
		}
	}
	return nil
}

// withLock runs fn holding the exclusive lock that guards the CSV at path.
func withLock(path string, fn func() error) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("results: %w", err)
		}
	}
	lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	defer lf.Close() // closing releases the lock
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("results: lock %s: %w", lf.Name(), err)
	}
	return fn()
}

// writeAtomic writes data to a temporary file beside path, syncs it (unless NoSync) and
// renames it over path.
func writeAtomic(path string, data []byte, o options) error {
	if err := fileio.WriteAtomic(path, data, 0o644, !o.noSync); err != nil {
		return fmt.Errorf("results: write %s: %w", path, err)
	}
	return nil
}
