//go:build !unix

package redisproc

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// stopSignal: Windows cannot deliver SIGTERM; Kill is all there is.
var stopSignal os.Signal = os.Kill
