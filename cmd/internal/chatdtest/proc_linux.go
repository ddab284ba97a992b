package chatdtest

import "syscall"

// ChildAttr starts a child in its own process group that gets sig when
// the test binary's thread dies first.
func ChildAttr(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
}
