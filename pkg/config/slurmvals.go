package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxJobTime bounds a parsed job time so that arithmetic never overflows; no cluster
// grants a job more than a year.
const maxJobTime = 366 * 24 * time.Hour

// ParseJobTime parses a time limit in every form sbatch's --time accepts: MM, MM:SS,
// HH:MM:SS, D-HH, D-HH:MM and D-HH:MM:SS. The leading field may be any size ("90"
// minutes, "48:00:00"); later minute and second fields are below 60 and hours after a
// day count below 24. "0", "-1", "INFINITE" and "UNLIMITED" mean no limit and return 0.
func ParseJobTime(s string) (time.Duration, error) {
	orig := s
	s = strings.TrimSpace(s)
	switch strings.ToUpper(s) {
	case "":
		return 0, errors.New("job time is empty")
	case "-1", "INFINITE", "UNLIMITED":
		return 0, nil
	}
	bad := func(why string) (time.Duration, error) {
		return 0, fmt.Errorf("job time %q: %s (SLURM forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)", orig, why)
	}
	var days int64
	hasDays := false
	if d, rest, ok := strings.Cut(s, "-"); ok {
		n, err := timeField(d)
		if err != nil {
			return bad("days: " + err.Error())
		}
		days, s, hasDays = n, rest, true
	}
	parts := strings.Split(s, ":")
	if len(parts) > 3 {
		return bad("too many fields")
	}
	nums := make([]int64, len(parts))
	for i, p := range parts {
		n, err := timeField(p)
		if err != nil {
			return bad(err.Error())
		}
		nums[i] = n
	}
	var h, m, sec int64
	if hasDays {
		// D-HH, D-HH:MM, D-HH:MM:SS
		h = nums[0]
		if len(nums) > 1 {
			m = nums[1]
		}
		if len(nums) > 2 {
			sec = nums[2]
		}
		if h >= 24 {
			return bad("hours after a day count must be below 24")
		}
	} else {
		switch len(nums) {
		case 1: // MM
			m = nums[0]
		case 2: // MM:SS
			m, sec = nums[0], nums[1]
		case 3: // HH:MM:SS
			h, m, sec = nums[0], nums[1], nums[2]
		}
	}
	leadIsMinutes := !hasDays && len(nums) <= 2
	if (!leadIsMinutes && m >= 60) || sec >= 60 {
		return bad("minutes and seconds must be below 60")
	}
	total := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour +
		time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	if total > maxJobTime {
		return bad("longer than a year")
	}
	return total, nil
}

// timeField parses one unsigned decimal field of at most 7 digits.
func timeField(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty field")
	}
	if len(s) > 7 {
		return 0, fmt.Errorf("field %q is too long", s)
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("field %q is not a number", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("field %q: %v", s, err)
	}
	return n, nil
}

// reservedSbatchLong are options the pipeline sets itself (or that would break job
// tracking: --wrap runs a shell command, --array changes job ids, --wait blocks sbatch,
// --parsable changes its output). slurm.extra_args may not set them, not even by a
// getopt-style abbreviation.
var reservedSbatchLong = []string{
	"account", "array", "chdir", "comment", "error", "job-name", "nodes", "ntasks",
	"ntasks-per-node", "output", "parsable", "partition", "segment", "test-only",
	"time", "wait", "wrap", "uid", "gid", "export", "export-file",
}

// reservedSbatchShort are the one-letter forms of the reserved options.
const reservedSbatchShort = "AaDeJNnopTtW"

// sbatchShortNoArg are sbatch's one-letter flags without a value, which may be bundled.
const sbatchShortNoArg = "HhkOQsuvV"

// SplitExtraArgs splits slurm.extra_args into sbatch arguments the way a shell would
// split words, without any expansion: single and double quotes group, nothing is
// evaluated. It refuses what could smuggle a command or break job tracking: control
// characters (newlines), `;`, `$`, backticks, `<`, `>`, backslashes, unbalanced quotes,
// words that do not start with `-` (write --gres=gpu:4, not --gres gpu:4) and options the
// pipeline sets itself (--job-name, --partition, --time, --wrap, ...).
func SplitExtraArgs(s string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
		quote rune
	)
	for i, r := range s {
		switch {
		case r < 0x20 || r == 0x7f:
			return nil, fmt.Errorf("extra_args: control character %q at offset %d is not allowed", r, i)
		case strings.ContainsRune(";$`<>\\", r):
			return nil, fmt.Errorf("extra_args: %q at offset %d is not allowed (arguments are never run through a shell)", r, i)
		}
		if quote != 0 {
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
			continue
		}
		switch r {
		case '\'', '"':
			quote, inArg = r, true
		case ' ':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("extra_args: unbalanced %c quote", quote)
	}
	if inArg {
		args = append(args, cur.String())
	}
	for _, a := range args {
		if err := checkSbatchArg(a); err != nil {
			return nil, fmt.Errorf("extra_args: %w", err)
		}
	}
	return args, nil
}

func checkSbatchArg(a string) error {
	if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
		return fmt.Errorf("argument %q is not an option: each argument must start with '-' (write --opt=value, not --opt value)", a)
	}
	if name, ok := strings.CutPrefix(a, "--"); ok {
		name, _, _ = strings.Cut(name, "=")
		for _, r := range reservedSbatchLong {
			if strings.HasPrefix(r, name) {
				return fmt.Errorf("option %q sets --%s, which the pipeline sets itself or which breaks job tracking", a, r)
			}
		}
		return nil
	}
	for _, c := range a[1:] {
		if strings.ContainsRune(reservedSbatchShort, c) {
			return fmt.Errorf("option %q sets -%c, which the pipeline sets itself or which breaks job tracking", a, c)
		}
		if !strings.ContainsRune(sbatchShortNoArg, c) {
			break // the rest is this option's value
		}
	}
	return nil
}

// maxSlurmName bounds partition, account and job names.
const maxSlurmName = 128

// CheckSlurmName checks a partition, account or job name: 1 to 128 characters of
// letters, digits, '.', '_' and '-', starting with a letter or digit. This is narrower
// than what SLURM stores and keeps names safe on a command line, in a file name and in
// sacct's comma-separated --name lists.
func CheckSlurmName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > maxSlurmName {
		return fmt.Errorf("%d characters is longer than %d", len(s), maxSlurmName)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			(i > 0 && (r == '.' || r == '_' || r == '-'))
		if !ok {
			if i == 0 {
				return fmt.Errorf("%q must start with a letter or digit", s)
			}
			return fmt.Errorf("%q: character %q is not allowed (use letters, digits, '.', '_', '-')", s, r)
		}
	}
	return nil
}

// CheckSbatchArg checks one sbatch argument as slurm.extra_args does: an option, and not
// one the pipeline sets itself or that breaks job tracking. The submitter applies it
// again to every argument a batch message carries.
func CheckSbatchArg(a string) error {
	if strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("argument %q holds a control character", a)
	}
	return checkSbatchArg(a)
}
