//go:build !linux

package testenv

import "syscall"

// childProcAttr: only Linux can tie a child's life to its parent.
func childProcAttr() *syscall.SysProcAttr { return nil }
