//go:build !unix

package main

// watchResize does nothing where there is no SIGWINCH: the line editor
// keeps the width it read at the start.
func watchResize(func()) (stop func()) { return func() {} }
