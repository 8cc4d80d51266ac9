package natsink_test

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the server die with the test process.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
