package local

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// The local scheduler tells a process from a later one that got its pid by the start
// time /proc gives: a record whose start time differs is a dead process, and so is a
// zombie. Without /proc every live pid would pass.
func TestLocalProcPIDReuse(t *testing.T) {
	self := os.Getpid()
	start := localProcStart(self)
	if start == 0 {
		t.Fatal("no start time for this process: /proc is not read")
	}
	if !(localProc{self, start}).alive() {
		t.Error("this process is not alive")
	}
	if (localProc{self, start + 1}).alive() {
		t.Error("a process with this pid but another start time (a reused pid) counts as alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	child := localProc{cmd.Process.Pid, localProcStart(cmd.Process.Pid)}
	deadline := time.Now().Add(5 * time.Second)
	for child.alive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if child.alive() {
		t.Error("an exited, unreaped child (a zombie) counts as alive")
	}
}
