//go:build unix && !linux

package chatdtest

import "syscall"

// ChildAttr starts a child in its own process group. Only Linux can also
// signal it when the test binary dies first.
func ChildAttr(syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
