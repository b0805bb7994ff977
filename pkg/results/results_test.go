package results

import (
	"bytes"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

var update = flag.Bool("update", false, "rewrite golden files")

var t0 = time.Date(2026, 11, 27, 0, 53, 53, 123456789, time.UTC)

// perfRows is a perf test's rows: two concurrencies, two metrics each.
func perfRows(runID, testID string) []Row {
	var rows []Row
	for i, c := range []int64{4, 1075} {
		for j, m := range []string{"SERVER_MEDIAN_TTFT", "SERVER_MEDIAN_E2EL"} {
			rows = append(rows, Row{
				RunID: runID, TestID: testID, TestType: "disagg", Category: "perf",
				Model: "deepseek-r1-fp4", Precision: "fp4", GPUType: "GB200",
				Concurrency: c, Metric: m, Value: 1122.63 + float64(10*i+j), Unit: "ms",
				Passed: true, Verdict: "pass",
				JobID: "1234", SlurmState: "COMPLETED", ExitCode: 0, NodeList: "nid[001-004]",
				Start: t0, End: t0.Add(703296025 * time.Microsecond),
				CtxGPUs: 4, GenGPUs: 16,
				OutputTokSPerGPU: Float(812.5 + float64(i)), TokSPerUser: Float(45.25 - float64(i)),
				ConfigHash: "sha256:abc", ContainerImage: "nvcr.io/nvidia/trtllm:1.0",
				SMClock: 2062, MemClock: 3996,
			})
		}
	}
	return rows
}

// accuracyRows is an accuracy test's rows, one failing.
func accuracyRows(runID, testID string) []Row {
	base := Row{
		RunID: runID, TestID: testID, TestType: "wideep", Category: "accuracy",
		Model: "deepseek-r1-fp4", Precision: "fp4", GPUType: "GB300",
		Metric: "exact_match", Unit: "fraction", Dataset: "gsm8k",
		Verdict: "fail", Reasons: "gsm8k strict-match: 0.91 < threshold 0.9361; job TIMEOUT", Partial: true,
		JobID: "77", SlurmState: "TIMEOUT", ExitCode: 0, NodeList: "localhost",
		Start: t0, CtxGPUs: 8, GenGPUs: 32, Command: "lm_eval --tasks gsm8k",
	}
	a, b := base, base
	a.Filter, a.Value, a.Threshold, a.Passed = "flexible-extract", 0.9454, Float(0.9361), true
	b.Filter, b.Value, b.Threshold, b.Passed = "strict-match", 0.91, Float(0.9361), false
	return []Row{a, b}
}

func TestCSVRecordsGolden(t *testing.T) {
	rows := append(perfRows("r1", "disagg_perf_deepseek-r1-fp4_1k1k"), accuracyRows("r1", "wideep_accuracy_x")...)
	missing := perfRows("r1", "disagg_perf_missing")[0]
	missing.Value, missing.Passed, missing.Start, missing.End = math.NaN(), false, time.Time{}, time.Time{}
	rows = append(rows, missing)
	got := append(bytes.Clone(csvHeaderLine), encodeCSV(CSVRecords(rows))...)
	golden := filepath.Join("testdata", "results.csv.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("CSV differs from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
	}
	// The fixed network_name and the seed's other names, checked by hand too.
	rec := CSVRecords(rows[:1])[0]
	if len(rec) != len(CSVHeader) {
		t.Fatalf("record has %d fields, header %d", len(rec), len(CSVHeader))
	}
	check := map[string]string{
		"network_name":    "disagg_perf_deepseek-r1-fp4_1k1k_con:4",
		"network_hash":    "test_benchmark[disagg_perf_deepseek-r1-fp4_1k1k]_con:4",
		"perf_case_name":  "test_benchmark[disagg_perf_deepseek-r1-fp4_1k1k]_con:4",
		"sm_clk":          "2062",
		"gpu_idx":         "",
		"perf_metric":     "1122.63",
		"total_time__sec": "703.296025",
		"start_timestamp": "2026-11-27 00:53:53",
		"end_timestamp":   "2026-11-27 01:05:36",
		"state":           "valid",
		"command":         "disagg_benchmark --model=deepseek-r1-fp4 --fp4 --concurrency=4",
		"threshold":       "",
		"metric_type":     "SERVER_MEDIAN_TTFT",
	}
	for i, col := range CSVHeader {
		if w, ok := check[col]; ok && rec[i] != w {
			t.Errorf("%s = %q, want %q", col, rec[i], w)
		}
	}
}

func TestPyFloat(t *testing.T) {
	tenth := 0.1 // a variable: constants would fold to exactly 0.3
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{1122.63, "1122.63"}, {100, "100.0"}, {0, "0.0"}, {-2.5, "-2.5"},
		{703.296025, "703.296025"}, {0.0001, "0.0001"}, {0.00001, "1e-05"},
		{1e16, "1e+16"}, {123456789012345.0, "123456789012345.0"},
		{math.NaN(), ""}, {math.Inf(1), "inf"}, {tenth + 2*tenth, "0.30000000000000004"},
	} {
		if got := pyFloat(tc.in); got != tc.want {
			t.Errorf("pyFloat(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// readCSV parses the file and checks that it has the header once, first.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s is not valid CSV: %v", path, err)
	}
	if len(recs) == 0 || !reflect.DeepEqual(recs[0], CSVHeader) {
		t.Fatalf("first line is not the header: %v", recs[:min(1, len(recs))])
	}
	for i, r := range recs[1:] {
		if reflect.DeepEqual(r, CSVHeader) {
			t.Fatalf("header repeated at record %d", i+1)
		}
	}
	return recs[1:]
}

func TestAppendCSVHeaderOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", CSVFile)
	if err := appendCSV(path, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no rows created the file: %v", err)
	}
	a, b := perfRows("r", "t1"), accuracyRows("r", "t2")
	if err := appendCSV(path, a); err != nil {
		t.Fatal(err)
	}
	if err := appendCSV(path, b); err != nil {
		t.Fatal(err)
	}
	recs := readCSV(t, path)
	want := CSVRecords(append(append([]Row{}, a...), b...))
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("file rows:\n%v\nwant:\n%v", recs, want)
	}
}

// checkBlocks checks that each append's rows (all rows of one test id) are contiguous and
// complete: n appends of per rows each, every append whole.
func checkBlocks(t *testing.T, recs [][]string, n, per int) {
	t.Helper()
	if len(recs) != n*per {
		t.Fatalf("%d rows, want %d", len(recs), n*per)
	}
	seen := map[string]bool{}
	for i := 0; i < len(recs); i += per {
		id := recs[i][0]
		if seen[id] {
			t.Fatalf("rows of %s appear in two places", id)
		}
		seen[id] = true
		for j := i; j < i+per; j++ {
			if len(recs[j]) != len(CSVHeader) || recs[j][0] != id {
				t.Fatalf("row %d interleaved: %v inside the block of %s", j, recs[j], id)
			}
		}
	}
}

// block is one append's rows, all with the same network name.
func block(id string, per int) []Row {
	rows := make([]Row, per)
	for i := range rows {
		rows[i] = Row{TestID: id, Category: "perf", Metric: fmt.Sprintf("M%d", i), Value: float64(i),
			Command: strings.Repeat("x", 300)} // long rows make torn writes visible
	}
	return rows
}

func TestAppendCSVConcurrentGoroutines(t *testing.T) {
	path := filepath.Join(t.TempDir(), CSVFile)
	const workers, appends, per = 8, 25, 6
	var wg sync.WaitGroup
	errs := make(chan error, workers*appends)
	for w := range workers {
		wg.Go(func() {
			for a := range appends {
				if err := appendCSV(path, block(fmt.Sprintf("g%d-%d", w, a), per)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkBlocks(t, readCSV(t, path), workers*appends, per)
}

// TestHelperAppendProcess is the child of TestAppendCSVConcurrentProcesses.
func TestHelperAppendProcess(t *testing.T) {
	path := os.Getenv("RESULTS_HELPER_CSV")
	if path == "" {
		t.Skip("helper process only")
	}
	for a := range 40 {
		if err := appendCSV(path, block(fmt.Sprintf("p%s-%d", os.Getenv("RESULTS_HELPER_ID"), a), 6)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendCSVConcurrentProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), CSVFile)
	const procs = 4
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppendProcess$")
		cmd.Env = append(os.Environ(), "RESULTS_HELPER_CSV="+path, "RESULTS_HELPER_ID="+strconv.Itoa(i))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("helper %d: %s", i, out.String())
			}
		})
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v", i, err)
		}
	}
	checkBlocks(t, readCSV(t, path), procs*40, 6)
}

func TestAppendCSVOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), CSVFile)
	mine := perfRows("r", "mine")

	// The claim is stored before the attempt.
	prepared, err := prepareCSV(path, mine)
	if err != nil {
		t.Fatal(err)
	}
	if prepared.Done || prepared.Offset != 0 || prepared.Length == 0 {
		t.Fatalf("prepared claim %+v", prepared)
	}
	// Another collector appends in between.
	if err := appendCSV(path, perfRows("r", "other")); err != nil {
		t.Fatal(err)
	}
	done, wrote, err := appendCSVOnce(path, mine, prepared)
	if err != nil || !wrote || !done.Done {
		t.Fatalf("first attempt: %+v wrote=%v err=%v", done, wrote, err)
	}
	if ok, _ := bytesAt(path, done.Offset, encodeCSV(CSVRecords(mine))); !ok {
		t.Fatalf("done claim offset %d does not point at the rows", done.Offset)
	}
	before, _ := os.ReadFile(path)

	// Crash after the append, before the done claim was recorded: the retry has only the
	// prepared claim, finds the rows and does not append them again.
	again, wrote, err := appendCSVOnce(path, mine, prepared)
	if err != nil || wrote || again != done {
		t.Fatalf("retry with prepared claim: %+v wrote=%v err=%v, want %+v not written", again, wrote, err, done)
	}
	// A redelivery after the done claim was recorded: no append either.
	again, wrote, err = appendCSVOnce(path, mine, done)
	if err != nil || wrote || again != done {
		t.Fatalf("retry with done claim: %+v wrote=%v err=%v", again, wrote, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("a retry changed the file")
	}
	if recs := readCSV(t, path); len(recs) != 2*len(mine) {
		t.Fatalf("%d rows, want %d", len(recs), 2*len(mine))
	}

	// The file was rebuilt (the rows moved): found by searching, not appended.
	if err := WriteCSV(path, append(perfRows("r", "first-test"), mine...)); err != nil {
		t.Fatal(err)
	}
	before, _ = os.ReadFile(path)
	moved, wrote, err := appendCSVOnce(path, mine, done)
	if err != nil || wrote || moved.Offset == done.Offset {
		t.Fatalf("after rebuild: %+v wrote=%v err=%v", moved, wrote, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("rows found after a rebuild were appended again")
	}
	// The file was rebuilt without them: appended again.
	if err := WriteCSV(path, perfRows("r", "first-test")); err != nil {
		t.Fatal(err)
	}
	if _, wrote, err = appendCSVOnce(path, mine, moved); err != nil || !wrote {
		t.Fatalf("after rebuild without the rows: wrote=%v err=%v", wrote, err)
	}
	if recs := readCSV(t, path); len(recs) != 2*len(mine) {
		t.Fatalf("%d rows, want %d", len(recs), 2*len(mine))
	}

	// Other rows than the claim's are refused.
	if _, _, err := appendCSVOnce(path, perfRows("r", "changed"), done); !errors.Is(err, ErrClaimMismatch) {
		t.Fatalf("changed rows: err = %v, want ErrClaimMismatch", err)
	}
}

func TestAppendCSVAfterTornWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), CSVFile)
	if err := appendCSV(path, perfRows("r", "a")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("torn,row,without,its,end") // a crash cut this write short
	f.Close()
	rows := perfRows("r", "b")
	if err := appendCSV(path, rows); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasSuffix(data, append([]byte("torn,row,without,its,end\n"), encodeCSV(CSVRecords(rows))...)) {
		t.Fatalf("rows after a torn line are not whole:\n%s", data)
	}
}

func TestParquetRoundTrip(t *testing.T) {
	root := filepath.Join(t.TempDir(), ResultsDir)
	want := map[string][]Row{}
	for _, run := range []string{"20261127T015300-ab12", "run 2/x"} {
		for _, rows := range [][]Row{perfRows(run, "disagg_perf_a"), accuracyRows(run, "wideep_accuracy_b")} {
			rows[0].Start = rows[0].Start.In(time.FixedZone("X", 3600)) // stored as UTC
			path, err := WriteParquet(root, run, rows[0].TestID, rows)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(path) != PartitionDir(root, run) || !strings.HasPrefix(filepath.Base(filepath.Dir(path)), "run=") {
				t.Fatalf("path %s is not under %s", path, PartitionDir(root, run))
			}
			want[path] = rows
		}
	}
	var all []Row
	for path, rows := range want {
		got, err := ReadParquet(path)
		if err != nil {
			t.Fatal(err)
		}
		compareRows(t, got, rows)
		all = append(all, rows...)
	}
	ds, err := ReadDataset(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != len(all) {
		t.Fatalf("dataset has %d rows, want %d", len(ds), len(all))
	}
	if ds[0].SchemaVersion != SchemaVersion {
		t.Errorf("schema_version = %d", ds[0].SchemaVersion)
	}
}

// compareRows compares every field of every row, after the writer's normalization.
func compareRows(t *testing.T, got, want []Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		w := want[i].normalize()
		g := got[i]
		gv, wv := reflect.ValueOf(g), reflect.ValueOf(w)
		for f := range gv.NumField() {
			name := gv.Type().Field(f).Name
			a, b := gv.Field(f).Interface(), wv.Field(f).Interface()
			if at, ok := a.(time.Time); ok {
				if !at.Equal(b.(time.Time)) || at.Location() != time.UTC {
					t.Errorf("row %d %s = %v, want %v (UTC)", i, name, a, b)
				}
				continue
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("row %d %s = %#v, want %#v", i, name, a, b)
			}
		}
	}
}

func TestWriteParquetIdempotent(t *testing.T) {
	root := t.TempDir()
	rows := perfRows("r1", "t1")
	p1, err := WriteParquet(root, "r1", "t1", rows)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(p1)
	p2, err := WriteParquet(root, "r1", "t1", rows)
	if err != nil || p2 != p1 {
		t.Fatalf("rewrite: %s %v", p2, err)
	}
	second, _ := os.ReadFile(p2)
	if !bytes.Equal(first, second) {
		t.Error("the same rows wrote a different file")
	}
	entries, _ := os.ReadDir(filepath.Dir(p1))
	if len(entries) != 1 {
		t.Errorf("partition holds %d entries, want the one file", len(entries))
	}
	// A leftover temporary file is not part of the dataset.
	os.WriteFile(filepath.Join(filepath.Dir(p1), ".t2.parquet.123.tmp"), []byte("partial"), 0o644)
	ds, err := ReadDataset(root)
	if err != nil || len(ds) != len(rows) {
		t.Fatalf("dataset: %d rows, %v", len(ds), err)
	}
	// Missing ids and rows of another test are refused; rows without ids take them.
	if _, err := WriteParquet(root, "", "t1", rows); err == nil {
		t.Error("empty run id accepted")
	}
	if _, err := WriteParquet(root, "r1", "t9", rows); err == nil {
		t.Error("rows of test t1 written as t9")
	}
	bare := []Row{{Metric: "M", Value: 1}}
	p, err := WriteParquet(root, "r2", "t3", bare)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := ReadParquet(p)
	if got[0].RunID != "r2" || got[0].TestID != "t3" {
		t.Errorf("ids not filled in: %+v", got[0])
	}
	if ds, err := ReadDataset(filepath.Join(root, "missing")); err != nil || len(ds) != 0 {
		t.Errorf("missing root: %v %v", ds, err)
	}
}

// TestParquetFileFormat checks the file itself: zstd column chunks, the schema version in
// the footer, nullable columns null where unset.
func TestParquetFileFormat(t *testing.T) {
	rows := accuracyRows("r", "t") // End and the Pareto columns unset
	path, err := WriteParquet(t.TempDir(), "r", "t", rows, NoSync())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := pf.Lookup("disaggbench.schema_version"); !ok || v != strconv.Itoa(SchemaVersion) {
		t.Errorf("schema version metadata = %q %v", v, ok)
	}
	if pf.NumRows() != int64(len(rows)) {
		t.Errorf("%d rows in the file", pf.NumRows())
	}
	nulls := map[string]int64{}
	for _, rg := range pf.Metadata().RowGroups {
		for _, cc := range rg.Columns {
			md := cc.MetaData
			if md.Codec != format.Zstd {
				t.Errorf("column %v compressed with %v, want ZSTD", md.PathInSchema, md.Codec)
			}
			nulls[strings.Join(md.PathInSchema, ".")] += md.Statistics.NullCount
		}
	}
	for _, col := range []string{"end", "output_tok_s_per_gpu", "tok_s_per_user"} {
		if nulls[col] != int64(len(rows)) {
			t.Errorf("column %s has %d nulls, want %d", col, nulls[col], len(rows))
		}
	}
	if nulls["threshold"] != 0 || nulls["start"] != 0 {
		t.Errorf("set values stored as null: %v", nulls)
	}
}

func TestEscapeName(t *testing.T) {
	for in, want := range map[string]string{
		"disagg_perf_deepseek-r1-fp4_1k1k": "disagg_perf_deepseek-r1-fp4_1k1k",
		"a/b":                              "a%2Fb",
		"run 1=x":                          "run%201%3Dx",
		".hidden":                          "%2Ehidden",
		"_meta":                            "%5Fmeta",
		"a%b":                              "a%25b",
	} {
		if got := escapeName(in); got != want {
			t.Errorf("escapeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkAppendCSV(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"fsync", nil}, {"nosync", []Option{NoSync()}}} {
		b.Run(bc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), CSVFile)
			rows := perfRows("r", "bench") // 4 rows per append, as one small test
			for b.Loop() {
				if err := appendCSV(path, rows, bc.opts...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func BenchmarkWriteParquet(b *testing.B) {
	for _, bc := range []struct {
		name string
		n    int // concurrencies: 4 rows (2 concurrencies x 2 metrics) per 2
		opts []Option
	}{
		{"4rows/fsync", 1, nil}, {"4rows/nosync", 1, []Option{NoSync()}},
		{"100rows/fsync", 25, nil}, {"1000rows/nosync", 250, []Option{NoSync()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			root := b.TempDir()
			var rows []Row
			for i := range bc.n {
				for _, r := range perfRows("r", "bench") {
					r.Concurrency += int64(10000 * i)
					rows = append(rows, r)
				}
			}
			i := 0
			for b.Loop() { // a new test each time, as in a run
				i++
				id := "bench-" + strconv.Itoa(i)
				for j := range rows {
					rows[j].TestID = id
				}
				if _, err := WriteParquet(root, "r", id, rows, bc.opts...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}

// A text cell a spreadsheet would run (a metric name from a log such as lm_eval's, a
// command) is neutralised with a leading quote; numbers, negative ones included, are not.
func TestCSVNeutralisesFormulas(t *testing.T) {
	rows := []Row{{TestID: "disagg_perf_x", Category: "perf", Concurrency: 1, Metric: "=HYPERLINK(\"http://x\")", Value: -1.5, Passed: true},
		{TestID: "disagg_perf_x", Category: "perf", Concurrency: 2, Metric: "@SUM(A1)", Command: "+cmd", Value: 2}}
	recs := CSVRecords(rows)
	if got := recs[0][16]; got != "'=HYPERLINK(\"http://x\")" {
		t.Errorf("metric_type %q", got)
	}
	if recs[0][8] != "-1.5" {
		t.Errorf("perf_metric %q: a number must stay a number", recs[0][8])
	}
	if recs[1][16] != "'@SUM(A1)" || recs[1][13] != "'+cmd" {
		t.Errorf("metric_type %q command %q", recs[1][16], recs[1][13])
	}
}

// The Parquet command column holds what the CSV's shows, the seed's form included.
func TestParquetCommandMatchesCSV(t *testing.T) {
	rows := []Row{{RunID: "r", TestID: "disagg_perf_x", Category: "perf", Model: "m", Precision: "fp4", Concurrency: 8, Metric: "M", Value: 1},
		{RunID: "r", TestID: "disagg_perf_x", Category: "perf", Concurrency: 8, Metric: "N", Command: "lm_eval --tasks gsm8k", Value: 1}}
	path := filepath.Join(t.TempDir(), "p.parquet")
	if err := WriteParquetFile(path, rows); err != nil {
		t.Fatal(err)
	}
	got, err := ReadParquet(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := CSVRecords(rows)
	for i := range rows {
		if got[i].Command != recs[i][13] {
			t.Errorf("row %d: Parquet command %q, CSV %q", i, got[i].Command, recs[i][13])
		}
	}
	if got[0].Command != "disagg_benchmark --model=m --fp4 --concurrency=8" {
		t.Errorf("seed form %q", got[0].Command)
	}
}
