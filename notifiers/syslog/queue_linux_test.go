package syslog

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// receiveQueue is the number of bytes waiting unread in c's receive queue,
// or -1 when it cannot be read.
func receiveQueue(c net.Conn) int {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	n := -1
	rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil {
			n = v
		}
	})
	return n
}
