//go:build !windows

package lock

import "syscall"

// processGone reports whether no process pid exists on this machine (signal 0
// checks existence without delivering anything).
func processGone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }
