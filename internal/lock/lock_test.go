package lock

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

func TestDeadLocalHolder(t *testing.T) {
	host, _ := os.Hostname()
	if deadLocalHolder(fmt.Sprintf("upgrade %s pid %d", host, os.Getpid())) {
		t.Fatal("this live process taken for dead")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if !deadLocalHolder(fmt.Sprintf("restore %s pid %d", host, cmd.Process.Pid)) {
		t.Fatal("an exited process not recognised as dead")
	}
	if deadLocalHolder(fmt.Sprintf("upgrade other-host pid %d", cmd.Process.Pid)) {
		t.Fatal("a holder on another machine judged dead")
	}
	if deadLocalHolder("garbage") {
		t.Fatal("unparsable holder judged dead")
	}
}
