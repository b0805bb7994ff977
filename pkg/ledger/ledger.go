// Package ledger owns the records the stages share in JetStream KV: each test's job
// record (the submitter's claim with its lease, then submitted, then completed; bucket
// bench_jobs), each run's record and totals (bench_runs), the collector's result claims
// (bench_results) and the tests' duration histories (bench_history). Reads are typed,
// writes are compare-and-set on the revision read: UpdateX reports a concurrent change as
// ErrConflict, MutateX reads again and retries until its change lands. The stages call
// the ledger; none of them touches a KV handle.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/results"
)

// Rev is a record's revision: what a compare-and-set writes over. 0 is no record.
type Rev = uint64

var (
	// ErrNotFound is a record that does not exist.
	ErrNotFound = errors.New("no such record")
	// ErrConflict is a write refused because the record is no longer at the revision
	// written over (or, for a create, exists already).
	ErrConflict = errors.New("the record changed meanwhile")
	// ErrSkip, returned by a Mutate function, leaves the record as it is: Mutate then
	// returns the record as read, without an error.
	ErrSkip = errors.New("record left unchanged")
)

// Ledger is the pipeline's records on one bus connection.
type Ledger struct {
	b *bus.Bus
}

// New is the ledger on b's buckets.
func New(b *bus.Bus) *Ledger { return &Ledger{b: b} }

// Job reads the job record of one test of a run. A missing record is ErrNotFound. A
// record that does not decode is an error that still carries the record's revision, so
// that it can be written over.
func (l *Ledger) Job(ctx context.Context, run, test string) (events.JobRecord, Rev, error) {
	var rec events.JobRecord
	rev, err := get(ctx, l.b.Jobs, events.Key(run, test), &rec)
	return rec, rev, err
}

// CreateJob writes a new job record at its run and test; ErrConflict when there is one.
func (l *Ledger) CreateJob(ctx context.Context, rec events.JobRecord) (Rev, error) {
	return create(ctx, l.b.Jobs, events.Key(rec.RunID, rec.TestID), rec)
}

// UpdateJob writes the job record of one test of a run over revision rev; ErrConflict
// when the record is at another.
func (l *Ledger) UpdateJob(ctx context.Context, run, test string, rec events.JobRecord, rev Rev) (Rev, error) {
	return update(ctx, l.b.Jobs, events.Key(run, test), rec, rev)
}

// MutateJob applies fn to the job record of one test of a run and writes it back,
// calling fn again on the record as it is now whenever another writer came first. When
// there is no record fn sees the zero record with found false, and the result is created.
func (l *Ledger) MutateJob(ctx context.Context, run, test string, fn func(rec *events.JobRecord, found bool) error) (events.JobRecord, Rev, error) {
	return mutate(ctx, l.b.Jobs, events.Key(run, test), fn)
}

// Run reads a run's record; a missing one is ErrNotFound.
func (l *Ledger) Run(ctx context.Context, run string) (events.RunRecord, error) {
	var rec events.RunRecord
	_, err := get(ctx, l.b.Runs, events.Token(run), &rec)
	return rec, err
}

// MutateRun applies fn to a run's record (the zero record when there is none) and
// writes it back, retrying on a concurrent change as MutateJob does.
func (l *Ledger) MutateRun(ctx context.Context, run string, fn func(*events.RunRecord) error) (events.RunRecord, error) {
	rec, _, err := mutate(ctx, l.b.Runs, events.Token(run), func(r *events.RunRecord, _ bool) error { return fn(r) })
	return rec, err
}

// ResultClaim is the collector's claim on a test's result: where its CSV rows went (or
// are going), the Parquet part holding its row, and whether its result was published.
type ResultClaim struct {
	CSV     results.CSVClaim `json:"csv"`
	Rows    int              `json:"rows"`
	Parquet string           `json:"parquet,omitempty"`
	Done    bool             `json:"done"`
	Passed  bool             `json:"passed"`
}

// ClaimResult creates cl as the claim on one test's result, or, when an earlier
// delivery left one, returns that claim instead.
func (l *Ledger) ClaimResult(ctx context.Context, run, test string, cl ResultClaim) (ResultClaim, Rev, error) {
	key := events.Key(run, test)
	rev, err := create(ctx, l.b.Results, key, cl)
	if errors.Is(err, ErrConflict) {
		cl = ResultClaim{}
		rev, err = get(ctx, l.b.Results, key, &cl)
	}
	return cl, rev, err
}

// UpdateResultClaim writes a result's claim over revision rev; ErrConflict when the
// claim is at another.
func (l *Ledger) UpdateResultClaim(ctx context.Context, run, test string, cl ResultClaim, rev Rev) (Rev, error) {
	return update(ctx, l.b.Results, events.Key(run, test), cl, rev)
}

// MutateHistory applies fn to a test's duration history on a GPU type (the empty
// history when there is none) and writes it back, retrying on a concurrent change. A
// connection without the history bucket records nothing.
func (l *Ledger) MutateHistory(ctx context.Context, test, gpuType string, fn func(*events.DurationHistory) error) error {
	if l.b.History == nil {
		return nil
	}
	_, _, err := mutate(ctx, l.b.History, events.HistoryKey(test, gpuType), func(h *events.DurationHistory, _ bool) error { return fn(h) })
	return err
}

// AllHistory reads every duration history in one pass, by events.HistoryKey. Entries
// that do not decode are left out; a connection without the bucket has none.
func (l *Ledger) AllHistory(ctx context.Context) (map[string]events.DurationHistory, error) {
	out := map[string]events.DurationHistory{}
	if l.b.History == nil {
		return out, nil
	}
	w, err := l.b.History.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil { // every current value has been delivered
				return out, nil
			}
			var h events.DurationHistory
			if json.Unmarshal(e.Value(), &h) == nil {
				out[e.Key()] = h
			}
		}
	}
}

// GetJSON reads the JSON record at key of a bucket into v and returns its revision, for
// tests and tools that look at the records as stored; a missing key is ErrNotFound.
func GetJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (Rev, error) {
	return get(ctx, kv, key, v)
}

// get reads key into v. A value that does not decode returns its revision with the error.
func get(ctx context.Context, kv jetstream.KeyValue, key string, v any) (Rev, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return 0, err
	}
	return e.Revision(), json.Unmarshal(e.Value(), v)
}

func create(ctx context.Context, kv jetstream.KeyValue, key string, v any) (Rev, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Create(ctx, key, data)
	return rev, conflict(err)
}

func update(ctx context.Context, kv jetstream.KeyValue, key string, v any, rev Rev) (Rev, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	nrev, err := kv.Update(ctx, key, data, rev)
	return nrev, conflict(err)
}

// conflict names a refused compare-and-set ErrConflict, keeping the server's word.
func conflict(err error) error {
	if err != nil && revMismatch(err) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// revMismatch reports a KV write refused because the entry is at another revision (or,
// for a create, exists).
func revMismatch(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// mutate is read, fn, compare-and-set, again until the write lands or fails otherwise.
func mutate[T any](ctx context.Context, kv jetstream.KeyValue, key string, fn func(*T, bool) error) (T, Rev, error) {
	for {
		var v T
		rev, err := get(ctx, kv, key, &v)
		missing := errors.Is(err, ErrNotFound)
		if err != nil && !missing {
			return v, 0, err
		}
		if err := fn(&v, !missing); err != nil {
			if errors.Is(err, ErrSkip) {
				return v, rev, nil
			}
			return v, 0, err
		}
		if missing {
			rev, err = create(ctx, kv, key, v)
		} else {
			rev, err = update(ctx, kv, key, v, rev)
		}
		if err == nil {
			return v, rev, nil
		}
		if !errors.Is(err, ErrConflict) {
			return v, 0, err
		}
		if ctx.Err() != nil {
			return v, 0, ctx.Err()
		}
	}
}
