// Package testkit holds the helpers the project's tests share: SyncBuffer, a
// goroutine-safe buffer a test can wait on (woken by each Write, never
// polled), FakeClock, a clock whose Sleep blocks until the test advances
// it and whose blocked sleepers the test can wait for, and NewCert, X.509
// certificates (CAs, device certificates, expired ones) made in the test.
//
// It is imported by _test.go files only: no production package may depend on
// it (TestOnlyTestsImportTestkit checks that). It imports nothing from this
// module, so any package's tests (hubsim's included) can use it.
//
// The rule it serves: a test never sleeps to synchronise. It waits on the
// event (a channel, SyncBuffer.WaitFor, FakeClock.WaitForSleepers) or drives
// the fake clock; it never sleeps and then asserts that nothing happened.
package testkit
