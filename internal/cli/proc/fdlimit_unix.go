//go:build unix

package proc

import "syscall"

// OpenFileLimit raises the soft limit on open files to the hard one (Go's
// runtime does so too at start on Linux and macOS; doing it here says what
// the limit is) and returns the soft limit, 0 when it cannot be read.
func OpenFileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	if l.Cur < l.Max {
		raised := l
		raised.Cur = l.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			l = raised
		}
	}
	if l.Cur > 1<<30 {
		return 1 << 30
	}
	return int(l.Cur)
}
