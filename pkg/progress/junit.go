package progress

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
)

// JUnit XML as pytest writes it (the xunit2 family CI systems read): one testsuite, one
// testcase per selected test, failure with the reasons, skipped for a GPU-filtered one.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Hostname  string      `xml:"hostname,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	ClassName string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// JUnitClass is the seed's pytest class, so test names read as they did there.
const JUnitClass = "test_disagg.TestDisaggBenchmark"

// WriteJUnit writes the run as JUnit XML. A test with no result yet (the run is not
// over) is an error case saying so, never left out.
func (p *Progress) WriteJUnit(w io.Writer) error {
	s := junitSuite{Name: "disaggbench run " + p.RunID}
	if p.Started != nil {
		s.Timestamp = p.Started.Time.UTC().Format("2006-01-02T15:04:05")
		s.Hostname = p.Started.Host
	}
	ids := make([]string, 0, len(p.Tests))
	for id := range p.Tests {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var total float64
	for _, id := range ids {
		t := p.Tests[id]
		c := junitCase{ClassName: JUnitClass, Name: "test_benchmark[" + id + "]", Time: "0.000"}
		switch r := t.Result; {
		case r == nil:
			msg := "no result: the test is " + strings.ToLower(t.State)
			if t.Ended {
				msg = "no result: the job ended but its result is not collected yet"
			}
			c.Error = &junitMessage{Message: msg, Type: "unfinished", Text: msg}
			s.Errors++
		default:
			c.Time = fmt.Sprintf("%.3f", r.Duration)
			total += r.Duration
			if !r.Passed {
				msg := r.State
				if len(r.Reasons) > 0 {
					msg = r.Reasons[0]
				}
				c.Failure = &junitMessage{Message: msg, Type: r.State, Text: strings.Join(r.Reasons, "\n")}
				s.Failures++
			} else if km := keyMetrics(r); km != "" {
				c.SystemOut = km
			}
			if r.LogDir != "" {
				if c.SystemOut != "" {
					c.SystemOut += "\n"
				}
				c.SystemOut += "logs: " + r.LogDir
			}
		}
		s.Cases = append(s.Cases, c)
	}
	if p.Started != nil {
		for _, sk := range p.Started.Skipped {
			s.Cases = append(s.Cases, junitCase{ClassName: JUnitClass, Name: "test_benchmark[" + sk.TestID + "]", Time: "0.000",
				Skipped: &junitMessage{Message: sk.Reason, Type: "pytest.skip", Text: sk.Reason}})
			s.Skipped++
		}
	}
	s.Tests = len(s.Cases)
	s.Time = fmt.Sprintf("%.3f", total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
