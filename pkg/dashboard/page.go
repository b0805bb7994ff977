package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
)

// Page is the dashboard's HTML. Served live (report nil) it loads its script and styles
// from /static/; as a report it carries them inline with the data, so the one file works
// anywhere, offline, with no request to any server.
func Page(report *ReportData) ([]byte, error) {
	skel, err := webFS.ReadFile("web/index.html")
	if err != nil {
		return nil, err
	}
	if report == nil {
		page := bytes.Replace(skel, []byte("<!--STYLE-->"), []byte(`<link rel="stylesheet" href="/static/app.css">`), 1)
		return bytes.Replace(page, []byte("<!--SCRIPTS-->"), []byte(`<script src="/static/chart.umd.min.js"></script>
<script src="/static/app.js"></script>`), 1), nil
	}
	var style, scripts bytes.Buffer
	css, err := webFS.ReadFile("web/app.css")
	if err != nil {
		return nil, err
	}
	style.WriteString("<style>\n")
	style.Write(css)
	style.WriteString("</style>")
	chart, err := webFS.ReadFile("web/chart.umd.min.js")
	if err != nil {
		return nil, err
	}
	app, err := webFS.ReadFile("web/app.js")
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(report) // escapes <, > and &, so no "</script>" can occur
	if err != nil {
		return nil, err
	}
	scripts.WriteString(`<script type="application/json" id="report-data">`)
	scripts.Write(data)
	scripts.WriteString("</script>\n<script>\n")
	scripts.Write(bannerURL.ReplaceAll(chart, nil))
	scripts.WriteString("\n</script>\n<script>\n")
	scripts.Write(app)
	scripts.WriteString("</script>")
	page := bytes.Replace(skel, []byte("<!--STYLE-->"), style.Bytes(), 1)
	page = bytes.Replace(page, []byte("<title>disaggbench dashboard</title>"),
		[]byte("<title>disaggbench report: "+htmlEscape(strings.Join(report.RunIDs(), ", "))+"</title>"), 1)
	return bytes.Replace(page, []byte("<!--SCRIPTS-->"), scripts.Bytes(), 1), nil
}

// bannerURL is the project link in the vendored library's licence banners; a report
// leaves it out so that the file names no address at all (the licence text stays).
var bannerURL = regexp.MustCompile(`\n \* https?://[^\n]*`)

func htmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&#34;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ReportData is what a report carries: the runs, as GET /api/runs/{id} gives them.
type ReportData struct {
	Generated time.Time    `json:"generated"`
	Runs      []*RunDetail `json:"runs"`
}

// RunIDs lists the report's runs.
func (r *ReportData) RunIDs() []string {
	var ids []string
	for _, d := range r.Runs {
		ids = append(ids, d.ID)
	}
	return ids
}

// Report reads the stream's history and returns the report page of the given runs; a
// run the stream does not know is an error.
func Report(ctx context.Context, b *bus.Bus, runs []string, log *slog.Logger) ([]byte, error) {
	if len(runs) == 0 {
		return nil, fmt.Errorf("dashboard report: name at least one run")
	}
	store := NewStore()
	if err := Load(ctx, b, store, log); err != nil {
		return nil, err
	}
	return ReportFrom(store, runs, time.Now().UTC())
}

// ReportFrom builds the report page of runs from store.
func ReportFrom(store *Store, runs []string, now time.Time) ([]byte, error) {
	data := &ReportData{Generated: now}
	var missing []string
	for _, id := range runs {
		d := store.Run(id)
		if d == nil {
			missing = append(missing, id)
			continue
		}
		data.Runs = append(data.Runs, d)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("dashboard report: no events of run %s in stream", strings.Join(missing, ", "))
	}
	return Page(data)
}
