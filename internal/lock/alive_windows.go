//go:build windows

package lock

import "golang.org/x/sys/windows"

// stillActive is the exit code GetExitCodeProcess reports for a running process.
const stillActive = 259

// processGone reports whether no process pid is running on this machine: it
// cannot be opened because it does not exist, or it has exited. Any other
// failure (access denied) counts as alive, so a lease is never taken over early.
func processGone(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return err == windows.ERROR_INVALID_PARAMETER
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return false
	}
	return code != stillActive
}
