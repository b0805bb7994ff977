package submit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
)

// A claim whose write succeeded but whose answer was lost (a cluster electing a leader)
// is found on the next try as this very claim and taken as written, not as another's
// (which the test would wait two minutes to take over). Another owner's claim, or an
// older claim of this owner, is still a conflict.
func TestClaimWrittenByAnEarlierTry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := bus.Connect(ctx, bus.Options{StoreDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := New(Config{Bus: b, Scheduler: fake.New(0), OutputPath: t.TempDir(), Log: quiet, Owner: "host:1"})
	if err != nil {
		t.Fatal(err)
	}
	rec := events.JobRecord{RunID: "r1", TestID: "t1", Phase: events.PhaseClaimed, Owner: "host:1", Claimed: time.Now().UTC()}
	// The earlier try, written though its caller never heard so.
	written, err := ledger.New(b).CreateJob(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := s.createClaim(ctx, rec); err != nil || rev != written {
		t.Fatalf("the same claim again: rev %d, %v; want rev %d, no error", rev, err, written)
	}
	other := rec
	other.Owner = "host:2"
	if _, err := s.createClaim(ctx, other); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("another owner's claim: %v, want a conflict", err)
	}
	older := rec
	older.Claimed = rec.Claimed.Add(-time.Minute)
	if _, err := s.createClaim(ctx, older); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("a claim of this owner made at another time: %v, want a conflict", err)
	}
}
