package submit_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
	"github.com/disaggbench/disaggbench/pkg/submit"
)

// A batch is data, not a command: each job that would make the submitter write or run
// anything outside its own OUTPUT_PATH/slurm_logs/<test>/<run> is refused and reported
// as SUBMIT_FAILED without a log folder, and nothing of it is written or submitted.
func TestForgedJobsAreRefusedAndReported(t *testing.T) {
	e := setup(t, 0)
	outside := t.TempDir()
	run := "rx"
	good := func(test string) events.JobSpec {
		logDir := filepath.Join(e.dir, "slurm_logs", test, run)
		return events.JobSpec{TestID: test, LogDir: logDir, Request: fake.Request(run, test, logDir, "job.sh"),
			Files: []events.File{{Name: "job.sh", Data: []byte("#!/bin/bash\n"), Mode: 0o755}}}
	}
	cases := map[string]func(j *events.JobSpec){
		"ok": func(j *events.JobSpec) {},
		"other_folder": func(j *events.JobSpec) {
			j.LogDir, j.Request.LogDir = outside, outside
			j.Request.Script = filepath.Join(outside, "job.sh")
		},
		"dotdot_file":    func(j *events.JobSpec) { j.Files[0].Name = "../../../escape.sh" },
		"subfolder_file": func(j *events.JobSpec) { j.Files = append(j.Files, events.File{Name: "a/b.sh"}) },
		"job_json":       func(j *events.JobSpec) { j.Files = append(j.Files, events.File{Name: events.JobFile}) },
		"script_outside": func(j *events.JobSpec) { j.Request.Script = "/bin/true" },
		"output_outside": func(j *events.JobSpec) { j.Request.Output = filepath.Join(outside, "out-%j.txt") },
		"workdir_outside": func(j *events.JobSpec) {
			j.Request.WorkDir = filepath.Join(j.LogDir, "..", "..")
		},
		"foreign_name":    func(j *events.JobSpec) { j.Request.Name = "somebody-elses-job" },
		"foreign_comment": func(j *events.JobSpec) { j.Request.Comment = "x" },
		"wrap_arg":        func(j *events.JobSpec) { j.Request.ExtraArgs = []string{"--wrap=id"} },
		"export_all":      func(j *events.JobSpec) { j.Request.ExtraArgs = []string{"--export=ALL"} },
		"bus_secret_env":  func(j *events.JobSpec) { j.Request.Env = map[string]string{"NATS_URL": "nats://evil"} },
	}
	var specs []events.JobSpec
	for name, mutate := range cases {
		j := good("disagg_perf_" + name)
		mutate(&j)
		j.Index = len(specs)
		specs = append(specs, j)
	}
	e.start(false)
	b := events.Batch{Header: events.NewHeader(run), Total: 1, Tests: len(specs), Policy: events.PolicySliding, Jobs: specs}
	sub, err := e.bus.NC.SubscribeSync(events.CompletedFilter)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Publish(e.ctx, events.BatchSubject(run, 0), events.BatchID(run, 0), b); err != nil {
		t.Fatal(err)
	}
	refused := map[string]events.JobCompleted{}
	for len(refused) < len(cases)-1 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("%d of %d refusals reported: %v", len(refused), len(cases)-1, err)
		}
		var ev events.JobCompleted
		_ = json.Unmarshal(m.Data, &ev)
		if ev.State == events.StateSubmitFailed {
			refused[strings.TrimPrefix(ev.TestID, "disagg_perf_")] = ev
		}
	}
	for name := range cases {
		ev, ok := refused[name]
		if name == "ok" {
			if ok {
				t.Errorf("a valid job was refused: %v", ev.Reasons)
			}
			continue
		}
		if !ok || ev.LogDir != "" || len(ev.Reasons) == 0 || !strings.Contains(ev.Reasons[0], "job refused") {
			t.Errorf("%s: %+v, want SUBMIT_FAILED with a reason and no log folder", name, ev)
		}
	}
	if n := e.fake.TotalSubmits(); n != 1 {
		t.Errorf("%d jobs submitted, want only the valid one", n)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("the submitter wrote outside its output path: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "escape.sh")); err == nil {
		t.Errorf("a ../ file name escaped the log folder")
	}
}

// A malformed or out-of-place batch is terminated with a reason, never redelivered, and
// holds up nothing behind it.
func TestMalformedBatchesAreTerminated(t *testing.T) {
	e := setup(t, 0)
	e.start(false)
	valid := events.Batch{Header: events.NewHeader("rm"), Total: 1, Tests: 1, Policy: events.PolicySliding}
	bad := map[string][]byte{
		"not json":      []byte("{"),
		"old schema":    mustJSON(func(b *events.Batch) { b.V = 99 }, valid),
		"other run":     mustJSON(func(b *events.Batch) { b.RunID = "elsewhere" }, valid),
		"no jobs":       mustJSON(func(b *events.Batch) {}, valid),
		"slash test id": mustJSON(func(b *events.Batch) { b.Jobs = []events.JobSpec{{TestID: "../x"}} }, valid),
	}
	for name, data := range bad {
		if _, err := e.bus.JS.Publish(e.ctx, events.BatchSubject("rm", 0), data, jetstream.WithMsgID("bad-"+name)); err != nil {
			t.Fatal(name, err)
		}
	}
	e.publish("rm2", 2, 0, events.PolicySliding)
	e.waitCompleted("rm2", 2)
	cons, err := e.bus.JS.Consumer(e.ctx, events.Stream, submit.Durable)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := cons.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			if info.NumRedelivered != 0 {
				t.Fatalf("%d batches redelivered", info.NumRedelivered)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batches still pending: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.fake.TotalSubmits() != 2 {
		t.Fatalf("%d submissions, want the 2 valid jobs", e.fake.TotalSubmits())
	}
}

func mustJSON(f func(*events.Batch), b events.Batch) []byte {
	f(&b)
	data, err := json.Marshal(b)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return data
}
