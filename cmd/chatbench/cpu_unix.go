//go:build unix

package main

import "syscall"

// ownCPU returns the user plus system CPU seconds this process has used,
// all its threads together.
func ownCPU() (float64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return float64(syscall.TimevalToNsec(ru.Utime)+syscall.TimevalToNsec(ru.Stime)) / 1e9, true
}
