package redact

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestStringMasksURLUserinfo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://alice:s3cretpw@host:4222", "nats://alice:" + Mask + "@host:4222"},
		{"connect to tls://tok3nvalue@10.0.0.1:4222: refused", "connect to tls://" + Mask + "@10.0.0.1:4222: refused"},
		{"nats://host:4222", "nats://host:4222"},
		{"a=nats://u:p@h, b=nats://v:q@k", "a=nats://u:" + Mask + "@h, b=nats://v:" + Mask + "@k"},
		{"mail me at bob@example.com", "mail me at bob@example.com"},
	} {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRegisteredSecretMaskedInLogsAndErrors(t *testing.T) {
	Add("hunter2-password", "ab") // too short to register
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(Writer(&buf), nil))
	log.Info("connecting", "password", "hunter2-password", "url", "nats://u:hunter2-password@h:1")
	err := fmt.Errorf("auth with %s: %w", "hunter2-password", errors.New("refused"))
	fmt.Fprintln(Writer(&buf), "planner:", err)
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Fatalf("secret printed:\n%s", out)
	}
	if strings.Count(out, Mask) < 3 {
		t.Fatalf("want the secret masked three times:\n%s", out)
	}
	if String("ab cd") != "ab cd" {
		t.Fatal("a two-letter secret was registered")
	}
	if Error(err) != "auth with "+Mask+": refused" {
		t.Fatalf("Error = %q", Error(err))
	}
}
