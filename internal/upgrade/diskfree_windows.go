//go:build windows

package upgrade

import "golang.org/x/sys/windows"

// freeBytes is the space available to this user on the volume holding dir
// (quotas included); ok is false when it cannot be read (the check is then skipped).
func freeBytes(dir string) (free int64, ok bool) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, false
	}
	var avail, total, totalFree uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &totalFree); err != nil {
		return 0, false
	}
	return int64(avail), true
}
