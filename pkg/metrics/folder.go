package metrics

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Size caps of the files a job leaves in its log folder. A larger file fails the test
// with a reason; it is never read in full.
const (
	maxLogFile  = 1 << 30  // a client or lm_eval log, read as a stream
	maxJSONFile = 16 << 20 // a result.json, read whole
)

// errNotRegular is a log path that is a FIFO, a device, a socket or a folder.
var errNotRegular = errors.New("not a regular file")

// folder reads a job's log folder as the job left it, which the job controls: only
// regular files inside it are read (symbolic links may point within it, never out of
// it; a loop is an error), each opened without blocking (a FIFO or a device never stalls
// the reader) and within a size cap.
type folder struct {
	dir  string
	root *os.Root
}

func openFolder(dir string) (*folder, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &folder{dir: dir, root: r}, nil
}

func (f *folder) close() {
	if f != nil && f.root != nil {
		f.root.Close()
	}
}

// open opens name (relative to the folder) for reading: a regular file of at most limit
// bytes.
func (f *folder) open(name string, limit int64) (*os.File, error) {
	if !filepath.IsLocal(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("not inside the log folder")}
	}
	file, err := f.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	return checkRegular(file, name, limit)
}

// openPath opens a single file named by the caller (collector parse FILE) under the same
// rules, without the folder's confinement.
func openPath(path string, limit int64) (*os.File, error) {
	file, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	return checkRegular(file, path, limit)
}

func checkRegular(file *os.File, name string, limit int64) (*os.File, error) {
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w (%s)", errNotRegular, st.Mode().Type())}
	}
	if st.Size() > limit {
		file.Close()
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%d bytes is more than the cap of %d", st.Size(), limit)}
	}
	return file, nil
}

// read reads a whole file opened by open: at most limit bytes, even if it grows.
func readLimited(file *os.File, name string, limit int64) ([]byte, error) {
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("grew past the cap of %d bytes", limit)}
	}
	return data, nil
}

// stat reports what name is, following links only within the folder.
func (f *folder) stat(name string) (fs.FileInfo, error) {
	if !filepath.IsLocal(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: errors.New("not inside the log folder")}
	}
	return f.root.Stat(name)
}

// glob returns the folder's names (relative, sorted) that match pattern, which must
// itself stay inside the folder.
func (f *folder) glob(pattern string) ([]string, error) {
	if !fs.ValidPath(pattern) {
		return nil, fmt.Errorf("pattern %q is not a path inside the log folder", pattern)
	}
	names, err := fs.Glob(f.root.FS(), pattern)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 && !strings.ContainsAny(pattern, `*?[\`) {
		// A plain name that exists but cannot be followed (a link out of the folder, a
		// loop): open says why.
		if _, err := f.root.Lstat(pattern); err == nil {
			names = []string{pattern}
		}
	}
	slices.Sort(names)
	return names, nil
}

// limitedReader fails a read once more than limit bytes came through: a regular file
// may grow after it was checked.
type limitedReader struct {
	r     io.Reader
	left  int64
	name  string
	limit int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, &fs.PathError{Op: "read", Path: l.name, Err: fmt.Errorf("grew past the cap of %d bytes", l.limit)}
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n - int(-l.left), &fs.PathError{Op: "read", Path: l.name, Err: fmt.Errorf("grew past the cap of %d bytes", l.limit)}
	}
	return n, err
}
