//go:build unix && !linux

package main

import "syscall"

// childAttr starts a child in its own process group. Only Linux can also
// signal it when the test binary dies first.
func childAttr(syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
