package results

import (
	"bytes"
	"encoding/csv"
	"math"
	"reflect"
	"strconv"
	"testing"
)

// FuzzCSVRecords checks that any row, whatever its strings hold (commas, quotes, line
// ends), is written as exactly one CSV record that reads back field for field, and that
// perf_metric reads back as the same float.
func FuzzCSVRecords(f *testing.F) {
	f.Add("disagg_perf_x", "cmd", "SERVER_MEDIAN_TTFT", int64(4), 1122.63)
	f.Add("a,b\"c\nd", "x\r\ny", "", int64(-1), math.Inf(-1))
	f.Add("a,b\"c\nd", "x\r\ny", "m", int64(-1), math.Inf(-1))
	f.Add("", " lead", "m\"", int64(0), 1e-300)
	f.Fuzz(func(t *testing.T, testID, command, metric string, c int64, v float64) {
		r := Row{TestID: testID, Command: command, Metric: metric, Concurrency: c, Value: v, Category: "perf"}
		recs := CSVRecords([]Row{r})
		if metric == "" {
			// A verdict without a value is in the Parquet dataset only.
			if len(recs) != 0 {
				t.Fatalf("a row without a metric became %d CSV records", len(recs))
			}
			return
		}
		got, err := csv.NewReader(bytes.NewReader(encodeCSV(recs))).ReadAll()
		if err != nil {
			t.Fatalf("written CSV does not parse: %v", err)
		}
		if len(got) != 1 || len(got[0]) != len(CSVHeader) {
			t.Fatalf("one row became %d records", len(got))
		}
		// The reader folds \r\n inside quoted fields to \n, as every CSV reader does.
		want := recs[0]
		for i := range want {
			want[i] = string(bytes.ReplaceAll([]byte(want[i]), []byte("\r\n"), []byte("\n")))
		}
		if !reflect.DeepEqual(got[0], want) {
			t.Fatalf("read back %q, wrote %q", got[0], want)
		}
		s := got[0][8]
		switch {
		case math.IsNaN(v):
			if s != "" {
				t.Fatalf("NaN written as %q", s)
			}
		default:
			back, err := strconv.ParseFloat(s, 64)
			if err != nil || back != v {
				t.Fatalf("perf_metric %q reads back as %v (%v), want %v", s, back, err, v)
			}
		}
	})
}
