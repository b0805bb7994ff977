package events

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Message size limits. A stage refuses (and terminates) a larger message without
// decoding it: a batch carries rendered job files, the other events only a few fields
// and a test's spec.
const (
	MaxBatchBytes = 8 << 20
	MaxEventBytes = 1 << 20
)

// MaxIDLen bounds run and test ids.
const MaxIDLen = 256

// JobComment is the SLURM comment of a run's test; with the job name it lets the watcher
// check that a job id it is asked to cancel is one the pipeline submitted for that run.
func JobComment(run, test string) string { return "disaggbench run=" + run + " test=" + test }

// JobNameFor reports whether a SLURM job name is the one of a run's test: it ends in
// ".<run>.<test>".
func JobNameFor(name, run, test string) bool {
	return strings.HasSuffix(name, "."+run+"."+test)
}

// CheckID checks a run or test id: 1 to MaxIDLen bytes of UTF-8 without control
// characters, path separators or "." and ".." (ids name folders).
func CheckID(field, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s is empty", field)
	case len(id) > MaxIDLen:
		return fmt.Errorf("%s is %d bytes, more than %d", field, len(id), MaxIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%s %q is not UTF-8", field, id)
	case id == "." || id == "..":
		return fmt.Errorf("%s %q is not a folder name", field, id)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return fmt.Errorf("%s %q holds %q", field, id, r)
		}
	}
	return nil
}

// subjectTokens splits a subject into its tokens after the given prefix.
func subjectTokens(subject, prefix string) []string {
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return nil
	}
	return strings.Split(rest, ".")
}

// DecodeBatch decodes and checks a batch delivered on subject: its size, schema version,
// run and index against the subject, and each job's test id. A job's paths are the
// submitter's to check against its own output path.
func DecodeBatch(subject string, data []byte) (*Batch, error) {
	if len(data) > MaxBatchBytes {
		return nil, fmt.Errorf("batch of %d bytes is larger than %d", len(data), MaxBatchBytes)
	}
	var b Batch
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("undecodable batch: %w", err)
	}
	if err := checkHeader(&b.Header); err != nil {
		return nil, err
	}
	tok := subjectTokens(subject, "bench.batches.")
	if len(tok) != 2 || tok[0] != Token(b.RunID) || tok[1] != strconv.Itoa(b.Index) {
		return nil, fmt.Errorf("batch %d of run %q arrived on subject %s", b.Index, b.RunID, subject)
	}
	switch {
	case len(b.Jobs) == 0:
		return nil, fmt.Errorf("batch %d has no jobs", b.Index)
	case b.Tests < len(b.Jobs) || b.BatchSize < 0 || b.Index < 0 || b.Total <= b.Index:
		return nil, fmt.Errorf("batch %d of %d: inconsistent counts (tests %d, batch size %d, jobs %d)", b.Index, b.Total, b.Tests, b.BatchSize, len(b.Jobs))
	case b.Policy != "" && b.Policy != PolicySliding && b.Policy != PolicyBarrier:
		return nil, fmt.Errorf("batch %d: unknown policy %q", b.Index, b.Policy)
	}
	seen := make(map[string]bool, len(b.Jobs))
	for i := range b.Jobs {
		j := &b.Jobs[i]
		if err := CheckID("test_id", j.TestID); err != nil {
			return nil, fmt.Errorf("batch %d job %d: %w", b.Index, i, err)
		}
		if seen[j.TestID] {
			return nil, fmt.Errorf("batch %d: test %q appears twice", b.Index, j.TestID)
		}
		seen[j.TestID] = true
		if j.Index < 0 || j.Index >= b.Tests {
			return nil, fmt.Errorf("batch %d: test %q has index %d outside the run's %d tests", b.Index, j.TestID, j.Index, b.Tests)
		}
	}
	return &b, nil
}

// DecodeJob decodes a job event (submitted, state or completed) delivered on subject
// into v, and checks its size, schema version, and run and test against the subject.
func DecodeJob(subject string, data []byte, v interface {
	header() *Header
	testID() string
}) error {
	if len(data) > MaxEventBytes {
		return fmt.Errorf("event of %d bytes is larger than %d", len(data), MaxEventBytes)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("undecodable event: %w", err)
	}
	h := v.header()
	if err := checkHeader(h); err != nil {
		return err
	}
	if err := CheckID("test_id", v.testID()); err != nil {
		return err
	}
	tok := subjectTokens(subject, "bench.jobs.")
	if len(tok) != 3 || tok[0] != Token(h.RunID) || tok[1] != Token(v.testID()) {
		return fmt.Errorf("event of run %q test %q arrived on subject %s", h.RunID, v.testID(), subject)
	}
	return nil
}

func checkHeader(h *Header) error {
	if h.V != Version {
		return fmt.Errorf("schema version %d, want %d", h.V, Version)
	}
	return CheckID("run_id", h.RunID)
}

func (e *JobSubmitted) header() *Header { return &e.Header }
func (e *JobSubmitted) testID() string  { return e.TestID }
func (e *JobCompleted) header() *Header { return &e.Header }
func (e *JobCompleted) testID() string  { return e.TestID }

// Judged is the part of a job's spec the collector judges by (type, category, metrics,
// datasets, provenance): no files, no scheduler request, so no environment values. It
// travels in the submitted and completed events; the collector never reads it from the
// job's folder, which the job itself can write.
func (j *JobSpec) Judged() *JobSpec {
	c := *j
	c.Files, c.Request = nil, scheduler.JobRequest{}
	return &c
}

// Within reports whether path is dir or inside it, both clean absolute paths compared
// lexically.
func Within(dir, path string) bool {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return false
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(rel)
}
