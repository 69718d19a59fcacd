package testenv

import "syscall"

// childProcAttr has the kernel kill the child when this process dies, so a crashed or
// interrupted test run leaks no server.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
