package pgtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel stop the server (immediate shutdown, which ends its backends
// too) when the test process dies, so that a test killed by its timeout leaves no server
// running.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
}
