// Package fileio reads and writes the pipeline's small files: with plain system calls
// on the per-job paths, and atomically (a temporary file renamed into place) where a
// reader must never see a partial file.
//
// os.Open on Linux tries to register every file with the runtime's poller (which refuses
// regular files) and sets up its bookkeeping: about 20 µs against 6 µs for open, read
// and close. The pipeline opens a few small files per job (the job's spec, its client
// log, the files it writes), so on its hot paths that difference is a few percent of the
// CPU of a whole run. Errors are *fs.PathError, as the os package returns them.
package fileio

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ReadFile reads the whole file at path.
func ReadFile(path string) ([]byte, error) {
	fd, err := open(path, syscall.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	size := 0
	if syscall.Fstat(fd, &st) == nil && st.Size > 0 && st.Size < 1<<30 {
		size = int(st.Size)
	}
	buf := make([]byte, 0, size+1) // one more byte sees the end in the first read
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// ErrNotRegular is ReadRegular's refusal of a FIFO, a device, a socket or a folder; the
// error returned is a *NotRegularError, which names the file's type.
var ErrNotRegular = errors.New("not a regular file")

// NotRegularError is a file that is not a regular one, with its type bits.
type NotRegularError struct{ Mode fs.FileMode }

func (e *NotRegularError) Error() string        { return ErrNotRegular.Error() }
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

// TooLargeError is a file over ReadRegular's limit. Size is its size when it was opened,
// or 0 when it grew past the limit while read.
type TooLargeError struct{ Size, Limit int64 }

func (e *TooLargeError) Error() string { return fmt.Sprintf("larger than %d bytes", e.Limit) }

// ReadRegular reads a regular file of at most limit bytes. It never blocks: a FIFO or a
// device is opened without blocking and refused (*NotRegularError) on the open file, so
// one swapped in after a caller looked is refused too. flags adds open flags
// (O_NOFOLLOW). A file over the limit, or one that grows past it while read, is a
// *TooLargeError. Like ReadFile, it opens without the runtime's poller.
func ReadRegular(path string, limit int64, flags int) ([]byte, error) {
	fd, err := open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|flags, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, &NotRegularError{Mode: fileMode(st.Mode)}
	}
	if st.Size > limit {
		return nil, &TooLargeError{Size: st.Size, Limit: limit}
	}
	buf := make([]byte, 0, st.Size+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR || err == syscall.EAGAIN {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		if buf = buf[:len(buf)+n]; int64(len(buf)) > limit {
			return nil, &TooLargeError{Limit: limit}
		}
	}
}

// fileMode is the fs.FileMode type bits of a stat mode.
func fileMode(m uint32) fs.FileMode {
	switch m & syscall.S_IFMT {
	case syscall.S_IFIFO:
		return fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		return fs.ModeSocket
	case syscall.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		return fs.ModeDevice
	case syscall.S_IFDIR:
		return fs.ModeDir
	case syscall.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}

// Open opens path for reading, as os.Open does, without the poller.
func Open(path string) (*os.File, error) {
	fd, err := open(path, syscall.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// CreateNew writes data to a file that must not exist yet (fs.ErrExist if it does),
// with mode less what the umask takes. A file this call created is removed again when
// writing it fails.
func CreateNew(path string, data []byte, mode os.FileMode) error {
	fd, err := open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL, uint32(mode.Perm()))
	if err != nil {
		return err
	}
	werr := writeAll(fd, data)
	if cerr := syscall.Close(fd); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = syscall.Unlink(path)
		return &fs.PathError{Op: "write", Path: path, Err: werr}
	}
	return nil
}

func open(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := syscall.Open(path, flags|syscall.O_CLOEXEC, perm)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := syscall.Write(fd, data)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

var (
	umaskOnce sync.Once
	umaskBits os.FileMode
)

// Umask is the process's file creation mask when first asked, read from /proc (setting
// it to read it would race with files other goroutines create); 0777 when unknown.
func Umask() os.FileMode {
	umaskOnce.Do(func() {
		umaskBits = 0o777
		f, err := Open("/proc/self/status")
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					umaskBits = os.FileMode(n) & 0o777
				}
				return
			}
		}
	})
	return umaskBits
}

// WriteAtomic writes data to a temporary file of its own beside path (".<name>.*.tmp"),
// created with mode (less what the umask takes), syncs it when sync is set, and renames
// it over path: a reader sees the old file or the new one, never part of one, and two
// writers of the same path never rename each other's file away. Only the temporary file
// is removed on failure.
func WriteAtomic(path string, data []byte, mode os.FileMode, sync bool) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var tmp *os.File
	var err error
	for range 100 {
		name := filepath.Join(dir, "."+base+"."+strconv.FormatUint(rand.Uint64(), 36)+".tmp")
		tmp, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil && sync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
	}
	return err
}
