package settings

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// Exit codes every binary uses.
const (
	ExitOK      = 0 // done (and -h, --version)
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // the command line is wrong; nothing ran
)

// Version is the build's version: the module version when built from a tagged module,
// else the VCS revision (with "+dirty" for uncommitted changes), else "devel".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if v != "" && v != "(devel)" {
		return v
	}
	if rev != "" {
		return rev[:min(12, len(rev))] + dirty
	}
	return "devel"
}

// PrintVersion writes "NAME VERSION" as --version prints it.
func PrintVersion(w io.Writer, name string) {
	fmt.Fprintf(w, "%s %s\n", name, Version())
}

// Parse parses a command's arguments strictly: flags may come before or after the
// positional arguments ("--" ends the flags), there must be between minArgs and maxArgs
// positional ones (maxArgs < 0: no limit), and a flag that does not exist is reported
// with the closest one that does. It returns the positional arguments and ok; when ok is
// false the command must return exit: 0 after -h/--help (usage on stdout) or --version,
// 2 after a usage error (reported on stderr; nothing has run). fs.Usage, when set, must
// write to fs.Output().
func Parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int, stdout, stderr io.Writer) (pos []string, exit int, ok bool) {
	name := fs.Name()
	bin, _, _ := strings.Cut(name, " ")
	// -h and --version win over missing arguments, not over a wrong flag before them.
	stop := ""
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "-version" || a == "--version" {
			stop, args = a, args[:i]
			break
		}
	}
	var errBuf bytes.Buffer
	fs.SetOutput(&errBuf)
	saved := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = saved; fs.SetOutput(stderr) }()
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			fmt.Fprintf(stderr, "%s: %s\n", name, flagError(fs, err))
			fmt.Fprintf(stderr, "Run '%s -h' for usage.\n", name)
			return nil, ExitUsage, false
		}
		if fs.NArg() == 0 {
			break
		}
		// "--" makes the rest positional; flag.Parse consumed it, so compare lengths.
		if consumed := len(rest) - fs.NArg(); consumed > 0 && rest[consumed-1] == "--" {
			pos = append(pos, fs.Args()...)
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	switch {
	case stop == "-version" || stop == "--version":
		PrintVersion(stdout, bin)
		return nil, ExitOK, false
	case stop != "":
		fs.Usage = saved
		fs.SetOutput(stdout)
		usage(fs)
		return nil, ExitOK, false
	case maxArgs >= 0 && len(pos) > maxArgs:
		extra := pos[maxArgs]
		if maxArgs == 0 {
			fmt.Fprintf(stderr, "%s: unexpected argument %q: this command takes no arguments, only flags\n", name, extra)
		} else {
			fmt.Fprintf(stderr, "%s: unexpected argument %q: this command takes at most %d\n", name, extra, maxArgs)
		}
	case len(pos) < minArgs:
		fmt.Fprintf(stderr, "%s: missing argument\n", name)
	default:
		return pos, 0, true
	}
	fmt.Fprintf(stderr, "Run '%s -h' for usage.\n", name)
	return nil, ExitUsage, false
}

func usage(fs *flag.FlagSet) {
	if fs.Usage != nil {
		fs.Usage()
		return
	}
	fmt.Fprintf(fs.Output(), "usage: %s [flags]\n", fs.Name())
	fs.PrintDefaults()
}

// flagError rewrites the flag package's error for a flag that does not exist so that it
// names the closest defined flag.
func flagError(fs *flag.FlagSet, err error) string {
	const prefix = "flag provided but not defined: -"
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return msg
	}
	bad := strings.TrimPrefix(msg, prefix)
	shown := "-" + bad
	if strings.HasPrefix(bad, "-") {
		bad = bad[1:]
	}
	out := "unknown flag " + shown
	if s := closestFlag(fs, bad); s != "" {
		out += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return out
}

func closestFlag(fs *flag.FlagSet, bad string) string {
	best, bestD := "", -1
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(strings.ToLower(bad), f.Name)
		if strings.HasPrefix(f.Name, bad) && len(bad) >= 2 {
			d = min(d, 1)
		}
		if bestD < 0 || d < bestD || d == bestD && f.Name < best {
			best, bestD = f.Name, d
		}
	})
	if best == "" || bestD > max(2, len(bad)/3) {
		return ""
	}
	if len(best) == 1 {
		return "-" + best
	}
	return "--" + best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
