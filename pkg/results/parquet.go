package results

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// ResultsDir is the Parquet dataset's folder under the output path.
const ResultsDir = "results"

// The dataset is one file per test and run: root/run=<run id>/<test id>.parquet. Hive
// readers (DuckDB's hive_partitioning, pandas/pyarrow, Spark) add the partition column
// "run" from the folder name; the rows keep run_id as a column of their own, so a single
// file read without the path still says which run it belongs to.

// PartitionDir is the folder of a run's files under root.
func PartitionDir(root, runID string) string {
	return filepath.Join(root, "run="+escapeName(runID))
}

// ParquetPath is where WriteParquet puts a test's rows of a run.
func ParquetPath(root, runID, testID string) string {
	return filepath.Join(PartitionDir(root, runID), escapeName(testID)+".parquet")
}

// WriteParquet writes a test's rows of a run to ParquetPath (zstd-compressed), replacing
// any earlier file of the same test and run: a repeated write is harmless and a reader
// never sees a partial file (the file is written beside its final name and renamed).
// Rows with an empty RunID or TestID take the given ones; rows with other ids are refused.
// It returns the file's path.
func WriteParquet(root, runID, testID string, rows []Row, opts ...Option) (string, error) {
	if runID == "" || testID == "" {
		return "", fmt.Errorf("results: parquet needs a run id and a test id (run %q, test %q)", runID, testID)
	}
	out := make([]Row, len(rows))
	for i, r := range rows {
		if r.RunID == "" {
			r.RunID = runID
		}
		if r.TestID == "" {
			r.TestID = testID
		}
		if r.RunID != runID || r.TestID != testID {
			return "", fmt.Errorf("results: row %d is run %q test %q, not run %q test %q", i, r.RunID, r.TestID, runID, testID)
		}
		out[i] = r
	}
	path := ParquetPath(root, runID, testID)
	return path, WriteParquetFile(path, out, opts...)
}

// WriteParquetFile writes rows to one Parquet file at path the way WriteParquet does
// (zstd, schema version, atomic replace), creating its folder. It lets a caller put the
// rows of many tests of a run in one file of the dataset, e.g.
// ParquetPath(root, runID, "batch-0001"), when one file per test costs too much; each
// test's rows must then be in exactly one file of the run.
func WriteParquetFile(path string, rows []Row, opts ...Option) error {
	out := make([]Row, len(rows))
	for i, r := range rows {
		out[i] = r.normalize()
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[Row](&buf,
		parquet.Compression(&parquet.Zstd),
		parquet.CreatedBy("disaggbench", "", ""),
		parquet.KeyValueMetadata("disaggbench.schema_version", strconv.Itoa(SchemaVersion)),
	)
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("results: parquet %s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("results: parquet %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	return writeAtomic(path, buf.Bytes(), applyOptions(opts))
}

// ReadParquet reads every row of one Parquet file.
func ReadParquet(path string) ([]Row, error) {
	rows, err := parquet.ReadFile[Row](path)
	if err != nil {
		return nil, fmt.Errorf("results: read %s: %w", path, err)
	}
	for i := range rows {
		rows[i].Start = utcOrZero(rows[i].Start)
		rows[i].End = utcOrZero(rows[i].End)
	}
	return rows, nil
}

// ReadDataset reads every file of the dataset under root (root/run=*/*.parquet) in path
// order. Hidden and temporary files (names starting with "." or "_") are skipped, as hive
// readers skip them. A missing root is an empty dataset.
func ReadDataset(root string) ([]Row, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && !strings.HasPrefix(name, "run=") {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || !strings.HasSuffix(name, ".parquet") {
			return nil
		}
		if filepath.Dir(p) == filepath.Clean(root) {
			return nil // only files inside run=<id>/ belong to the dataset
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	sort.Strings(paths)
	var all []Row
	for _, p := range paths {
		rows, err := ReadParquet(p)
		if err != nil {
			return nil, err
		}
		all = append(all, rows...)
	}
	return all, nil
}

// utcOrZero keeps the zero time zero (it is stored as year 1) and puts others in UTC.
func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// escapeName makes an id safe as one path element and as a hive partition value: letters,
// digits, '-' and '.' stay, every other byte becomes %XX (hive readers decode it), and a
// leading '.' or '_' is escaped too so no reader takes the file for a hidden one.
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.'
		if ok && i == 0 && (c == '.' || c == '_') {
			ok = false
		}
		if ok {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
