//go:build !unix

package main

import "time"

// processCPU is the process's CPU time where getrusage exists; elsewhere
// (Windows) it is 0: hubsim bench then reports 0 CPU seconds.
func processCPU() time.Duration { return 0 }
