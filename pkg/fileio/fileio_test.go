package fileio

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFileSizes(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 4095, 4096, 70000, 1 << 20} {
		path := filepath.Join(dir, "f")
		want := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: got %d bytes, err %v", n, len(got), err)
		}
	}
	// A file that grows past its size at open time is read to its end; /proc files
	// report size 0 and still read whole.
	if got, err := ReadFile("/proc/self/status"); err == nil && !bytes.Contains(got, []byte("Umask:")) {
		t.Fatalf("/proc/self/status read as %q", got)
	}
	_, err := ReadFile(filepath.Join(dir, "missing"))
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Op != "open" {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := ReadFile(dir); err == nil {
		t.Fatal("reading a folder succeeded")
	}
}

func TestOpenReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || string(got) != "hello\n" || f.Name() != path {
		t.Fatalf("read %q, %v, name %s", got, err, f.Name())
	}
	if _, err := Open(path + ".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

func TestCreateNewExactModeAndExclusive(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o644, 0o755, 0o600, 0o777} {
		path := filepath.Join(dir, mode.String())
		if err := CreateNew(path, []byte("data"), mode); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != mode&^Umask() {
			t.Fatalf("mode %v: got %v (%v)", mode, st.Mode().Perm(), err)
		}
		if got, _ := os.ReadFile(path); string(got) != "data" {
			t.Fatalf("content %q", got)
		}
		if err := CreateNew(path, []byte("other"), mode); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("second create: %v, want fs.ErrExist", err)
		}
		if got, _ := os.ReadFile(path); string(got) != "data" {
			t.Fatalf("an existing file was changed: %q", got)
		}
	}
}

func TestUmaskMatchesTheKernel(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, _ := os.Stat(path)
	if got := 0o666 &^ Umask(); st.Mode().Perm() != got {
		t.Fatalf("Umask() = %o, but a 0666 file came out %o", Umask(), st.Mode().Perm())
	}
}

func BenchmarkReadFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "f")
	_ = os.WriteFile(path, make([]byte, 1200), 0o644)
	b.Run("os", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.ReadFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fileio", func(b *testing.B) {
		for b.Loop() {
			if _, err := ReadFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestWriteAtomicReplacesWholeAndLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sync := range []bool{false, true} {
		if err := WriteAtomic(path, []byte("#!/bin/bash\n"), 0o755, sync); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		if got, _ := os.ReadFile(path); string(got) != "#!/bin/bash\n" || st.Mode().Perm() != 0o755 {
			t.Fatalf("sync=%v: %q mode %v", sync, got, st.Mode().Perm())
		}
	}
	// A failed write (no such folder) leaves no temporary file and no file.
	if err := WriteAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), 0o644, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("write into a missing folder: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("folder holds %d entries, want only job.sh", len(entries))
	}
}

// Written files honour the umask: under umask 077 nobody but the owner may read a job's
// files, whatever mode they ask for.
func TestFilesHonourTheUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		write func(string) error
		mode  os.FileMode
	}{
		{"created", func(p string) error { return CreateNew(p, []byte("x"), 0o755) }, 0o700},
		{"atomic", func(p string) error { return WriteAtomic(p, []byte("x"), 0o644, false) }, 0o600},
		{"atomic-synced", func(p string) error { return WriteAtomic(p, []byte("x"), 0o755, true) }, 0o700},
	} {
		path := filepath.Join(dir, tc.name)
		if err := tc.write(path); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != tc.mode {
			t.Errorf("%s under umask 077: mode %v (%v), want %v", tc.name, st.Mode().Perm(), err, tc.mode)
		}
	}
}

// ReadRegular reads a whole regular file up to its limit and refuses, without blocking,
// what is not one: a FIFO with no writer, a folder, a link under O_NOFOLLOW, a file
// over the limit.
func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRegular(file, int64(len(data)), 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadRegular of a %d-byte file at its limit: %d bytes, %v", len(data), len(got), err)
	}
	if _, err := ReadRegular(file, int64(len(data))-1, 0); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a file one byte over the limit: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadRegular(fifo, 1<<20, 0); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("a FIFO: %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadRegular blocked on a FIFO")
	}
	if _, err := ReadRegular(dir, 1<<20, 0); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a folder: %v, want ErrNotRegular", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRegular(link, 1<<21, 0); err != nil {
		t.Errorf("a link, followed: %v", err)
	}
	if _, err := ReadRegular(link, 1<<21, syscall.O_NOFOLLOW); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("a link under O_NOFOLLOW: %v, want ELOOP", err)
	}
}
