package plugins

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel SIGKILL the plugin when the host dies, SIGKILL included.
func killWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
