//go:build !unix

package main

// ownCPU is not measured outside Unix.
func ownCPU() (float64, bool) { return 0, false }
