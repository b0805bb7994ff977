package progress_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/progress"
)

// A follower whose consumer is lost (as a cluster replacing the stream's leader loses
// it) follows on from the last event it applied: every event once, to the run's end.
func TestFollowSurvivesALostConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run := "r-lost"
	pub := func(subject, id string, v any) {
		t.Helper()
		if err := b.Publish(ctx, subject, id, v); err != nil {
			t.Fatal(err)
		}
	}
	pub(events.RunStartedSubject(run), events.StartedID(run), events.RunStarted{Header: events.NewHeader(run), Tests: 2, TestIDs: []string{"a", "b"}})
	pub(events.JobSubject(run, "a", events.KindSubmitted), "s-a", events.JobSubmitted{Header: events.NewHeader(run), TestID: "a", JobID: "1"})

	var lines []string
	lineCh := make(chan string, 64)
	done := make(chan error, 1)
	var prog *progress.Progress
	go func() {
		p, err := progress.Follow(ctx, b, run, false, func(line string, _ *progress.Progress) { lineCh <- line })
		prog = p
		done <- err
	}()
	next := func() string {
		t.Helper()
		select {
		case l := <-lineCh:
			lines = append(lines, l)
			return l
		case <-time.After(10 * time.Second):
			t.Fatalf("no event followed; so far %q", lines)
		}
		return ""
	}
	next()
	next()
	// The follower's consumer goes away.
	lister := b.Stream.ListConsumers(ctx)
	deleted := 0
	for info := range lister.Info() {
		if strings.HasPrefix(info.Config.Description, "follow run "+run) {
			if err := b.Stream.DeleteConsumer(ctx, info.Name); err != nil {
				t.Fatal(err)
			}
			deleted++
		}
	}
	if deleted != 1 {
		t.Fatalf("deleted %d follower consumers, want 1", deleted)
	}
	pub(events.JobSubject(run, "b", events.KindSubmitted), "s-b", events.JobSubmitted{Header: events.NewHeader(run), TestID: "b", JobID: "2"})
	pub(events.RunFinishedSubject(run), events.FinishedID(run), events.RunFinished{Header: events.NewHeader(run), Tests: 2})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("follow ended with %v after its consumer was lost; lines %q", err, lines)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("follow did not reach the run's end; lines %q", lines)
	}
	close(lineCh)
	for l := range lineCh {
		lines = append(lines, l)
	}
	if len(lines) != 4 || prog.Finished == nil || prog.Tests["b"].JobID != "2" {
		t.Fatalf("lines %q (want each of the 4 events once), finished %v", lines, prog.Finished)
	}
}
