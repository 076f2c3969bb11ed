//go:build !windows

package upgrade

import "syscall"

// freeBytes is the space available to this user in the file system holding
// dir; ok is false when it cannot be read (the check is then skipped).
func freeBytes(dir string) (free int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	// field types differ per OS (linux: int64 Bsize, darwin: uint32)
	return int64(st.Bavail) * int64(st.Bsize), true
}
