//go:build !linux

package main

import (
	"errors"
	"syscall"
)

// bindNoPort does nothing outside Linux.
func bindNoPort(_, _ string, _ syscall.RawConn) error { return nil }

// raiseNoFile is not supported outside Linux.
func raiseNoFile() (uint64, error) {
	return 0, errors.New("raising the open-file limit is supported on Linux only")
}
