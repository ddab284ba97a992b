//go:build !unix

package chatdtest

import "syscall"

// childAttr: no process groups here; Kill ends the process alone.
func childAttr(syscall.Signal) *syscall.SysProcAttr { return nil }

func killGroup(int) {}
