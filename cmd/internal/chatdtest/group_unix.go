//go:build unix

package chatdtest

import "syscall"

func childAttr(sig syscall.Signal) *syscall.SysProcAttr { return ChildAttr(sig) }

// killGroup sends SIGKILL to the process group of pid.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
