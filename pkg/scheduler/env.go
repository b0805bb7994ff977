package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// SecretEnvPrefixes name the variables a job never receives from the process that
// submits it: the bus's connection and credentials (NATS_URL, NATS_PASSWORD, NATS_TOKEN,
// NATS_CREDS, NATS_NKEY, ...) and the shared server's passwords.
var SecretEnvPrefixes = []string{"NATS_", "DISAGGBENCH_NATS_"}

// secretWords mark the project's own secrets among its DISAGGBENCH_ variables; its other
// settings (DISAGGBENCH_EMU_SEED, ...) reach jobs.
var secretWords = []string{"PASSWORD", "TOKEN", "SECRET", "CREDS", "NKEY", "KEY"}

// SecretEnv reports whether a variable is kept from jobs.
func SecretEnv(name string) bool {
	for _, p := range SecretEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	if rest, ok := strings.CutPrefix(name, "DISAGGBENCH_"); ok {
		for _, w := range strings.Split(rest, "_") {
			if slices.Contains(secretWords, w) {
				return true
			}
		}
	}
	return false
}

// envName reports a plain variable name: [A-Za-z_][A-Za-z0-9_]*. Other names (exported
// shell functions, odd inherited entries) are not passed on to jobs.
func envName(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		ok := c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// CheckJobEnv checks one variable of a job request: a plain name that is not a secret,
// and a value without NUL.
func CheckJobEnv(k, v string) error {
	switch {
	case !envName(k):
		return fmt.Errorf("job environment variable %q: not a plain name", k)
	case SecretEnv(k):
		return fmt.Errorf("job environment variable %q: the bus's credentials and the project's secrets never reach a job", k)
	case strings.ContainsRune(v, 0):
		return fmt.Errorf("job environment variable %q: value holds a NUL byte", k)
	}
	return nil
}

// JobEnviron is a job's environment, explicitly: base (the submitting process's
// environment, as os.Environ gives it) without the secret variables and without
// entries that are not plain names, then the request's own variables. A variable a job
// needs, such as HF_TOKEN, reaches it by being in the submitter's environment: it is
// never written into a file or onto a command line.
func JobEnviron(base []string, extra map[string]string) []string {
	env := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envName(k) || SecretEnv(k) || extra[k] != "" {
			continue
		}
		env = append(env, kv)
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if CheckJobEnv(k, extra[k]) == nil {
			env = append(env, k+"="+extra[k])
		}
	}
	return env
}
