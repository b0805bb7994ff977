package config

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// keyHeavy is a config of about size bytes whose worker_config.gen holds nothing but
// short keys: the most YAML nodes a file of that size can hold in block style.
func keyHeavy(size int) []byte {
	var b bytes.Buffer
	b.WriteString("metadata:\n  model_name: m\nworker_config:\n  gen:\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "    k%x: 1\n", i)
	}
	return b.Bytes()
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A key-heavy file just under the size cap (4 MB) is refused before it is parsed: it
// used to take 80 times its size (337 MiB); the largest file that still parses is
// bounded too.
func TestKeyHeavyConfigMemoryIsBounded(t *testing.T) {
	data := keyHeavy(maxFileSize - 64)
	var ps []Problem
	got := allocated(func() { _, ps = LoadBytes("x/disagg/perf/a.yaml", data) })
	if len(ps) != 1 || !strings.Contains(ps[0].Message, "keys, values and lines") {
		t.Fatalf("problems %v, want one about too many keys", ps[:min(3, len(ps))])
	}
	t.Logf("4 MiB key-heavy file: %d bytes allocated", got)
	if got > 1<<20 {
		t.Errorf("refusing a 4 MiB file allocated %d bytes, want under 1 MiB", got)
	}
	// The biggest key-heavy file under the token cap.
	data = keyHeavy(maxTokens / 2 * 10)
	for countTokens(data) > maxTokens {
		data = data[:bytes.LastIndexByte(data[:len(data)-1], '\n')+1]
	}
	got = allocated(func() { _, ps = LoadBytes("x/disagg/perf/a.yaml", data) })
	t.Logf("%d-byte key-heavy file (%d tokens): %d MiB allocated", len(data), countTokens(data), got>>20)
	if got > maxConfigMemory {
		t.Errorf("allocated %d MiB, more than the %d MiB a config is budgeted", got>>20, maxConfigMemory>>20)
	}
}
