//go:build unix && !linux

package redisproc

import (
	"os"
	"syscall"
)

// sysProcAttr puts redis-server in its own process group, so a Ctrl-C
// meant for chatd does not kill Redis before chatd has drained; chatd
// stops it last. Only Linux can have the kernel stop it if chatd dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

var stopSignal os.Signal = syscall.SIGTERM
