package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseJobTime(t *testing.T) {
	h, m, s, d := time.Hour, time.Minute, time.Second, 24*time.Hour
	good := []struct {
		in   string
		want time.Duration
	}{
		{"30", 30 * m},
		{"90", 90 * m},
		{"30:15", 30*m + 15*s},
		{"02:00:00", 2 * h},
		{"48:00:00", 48 * h},
		{"1-12", d + 12*h},
		{"1-12:30", d + 12*h + 30*m},
		{"2-03:04:05", 2*d + 3*h + 4*m + 5*s},
		{" 10:00 ", 10 * m},
		{"UNLIMITED", 0},
		{"infinite", 0},
		{"-1", 0},
		{"0", 0},
	}
	for _, tc := range good {
		got, err := ParseJobTime(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseJobTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	bad := []string{"", "abc", "1:2:3:4", "02:60:00", "01:00:60", "1-24", "1-", "-5", "1--2",
		"1.5", "2h", "1-2-3", ":30", "30:", "99999999", "400-00", "1-02:03:04:05", "+5", "1e3"}
	for _, in := range bad {
		if got, err := ParseJobTime(in); err == nil {
			t.Errorf("ParseJobTime(%q) = %v, nil; want an error", in, got)
		}
	}
}

func TestSplitExtraArgs(t *testing.T) {
	good := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   ", nil},
		{"--gres=gpu:4", []string{"--gres=gpu:4"}},
		{"  --gres=gpu:4   --exclusive ", []string{"--gres=gpu:4", "--exclusive"}},
		{`--comment-not=1 --constraint="rack1&nvl"`, []string{"--comment-not=1", "--constraint=rack1&nvl"}},
		{`--mail-user='a b'`, []string{"--mail-user=a b"}},
		{"-c4 -wnode[1-4]", []string{"-c4", "-wnode[1-4]"}},
		{"-vv", []string{"-vv"}},
		{"--nodelist=n[1-4] --no-requeue", []string{"--nodelist=n[1-4]", "--no-requeue"}},
	}
	for _, tc := range good {
		got, err := SplitExtraArgs(tc.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("SplitExtraArgs(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	bad := map[string]string{
		"--gres=gpu:4; rm -rf /":    "';'",
		"--mem=0 -x bad":            `"bad" is not an option`,
		"--gres=gpu:4\n--exclusive": "control character",
		"--comment=$HOME":           "'$'",
		"--x=`id`":                  "'`'",
		"--x=a>b":                   "'>'",
		`--x=a\ b`:                  `'\\'`,
		`--x="unclosed`:             "unbalanced",
		"--gres gpu:4":              "not an option",
		"gpu":                       "not an option",
		"-":                         "not an option",
		"--":                        "not an option",
		"--job-name=x":              "--job-name",
		"--job=x":                   "--job-name",
		"--part=x":                  "--partition",
		"--wrap=id":                 "--wrap",
		"--export=ALL":              "--export",
		"--export-file=/tmp/env":    "--export",
		"--array=1-3":               "--array",
		"--time=1":                  "--time",
		"--nodes=3":                 "--nodes",
		"--=x":                      "pipeline sets",
		"-J x":                      "-J",
		"-pbatch":                   "-p",
		"-vN2":                      "-N",
		"--output=/tmp/x":           "--output",
		"--gres=gpu:4 --parsable":   "--parsable",
	}
	for in, want := range bad {
		_, err := SplitExtraArgs(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SplitExtraArgs(%q) error = %v; want one mentioning %s", in, err, want)
		}
	}
}

func TestCheckSlurmName(t *testing.T) {
	for _, s := range []string{"batch", "gb200-nvl72", "acct_01", "unified-benchmark", "a.b", "9x"} {
		if err := CheckSlurmName(s); err != nil {
			t.Errorf("CheckSlurmName(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "a b", "a;b", "$x", "a\nb", "-x", ".x", "a,b", "a/b", "é", strings.Repeat("a", 129)} {
		if err := CheckSlurmName(s); err == nil {
			t.Errorf("CheckSlurmName(%q) = nil; want an error", s)
		}
	}
}

func TestLookupGPU(t *testing.T) {
	cases := []struct {
		in, name string
		args     string
		segment  bool
	}{
		{"GB200", "GB200", "--gres=gpu:4", true},
		{"", "GB200", "--gres=gpu:4", true},
		{"gb200_nvl72", "GB200", "--gres=gpu:4", true},
		{"GB300", "GB300", "", true},
		{"H100", "H100", "", false},
		{"B200", "B200", "--gres=gpu:4", false},
		{"B300", "B300", "--gres=gpu:4", false},
	}
	for _, tc := range cases {
		r, err := LookupGPU(tc.in)
		if err != nil || r.Name != tc.name || strings.Join(r.SbatchArgs, " ") != tc.args || r.Segment != tc.segment {
			t.Errorf("LookupGPU(%q) = %+v, %v", tc.in, r, err)
		}
	}
	_, err := LookupGPU("A100")
	if err == nil || !strings.Contains(err.Error(), `"A100"`) || !strings.Contains(err.Error(), "B200, B300, GB200, GB300, H100") {
		t.Errorf("LookupGPU(A100) error = %v", err)
	}
	// The table is not shared with callers.
	r, _ := LookupGPU("GB200")
	r.SbatchArgs[0] = "changed"
	if r2, _ := LookupGPU("GB200"); r2.SbatchArgs[0] != "--gres=gpu:4" {
		t.Error("LookupGPU returned the table's own slice")
	}
}
