package main

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT from linux/in.h: with it
// a socket bound to a source address gets its port at connect time, from
// the ports free towards that destination, rather than at bind time from
// the ports free on the address as a whole.
const ipBindAddressNoPort = 24

// bindNoPort is a net.Dialer Control function that sets
// IP_BIND_ADDRESS_NO_PORT. It is best effort: older kernels ignore it.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
}

// raiseNoFile lifts the soft open-file limit to the hard limit and
// returns the new soft limit.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
