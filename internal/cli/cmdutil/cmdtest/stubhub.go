package cmdtest

import (
	"os"
	"testing"

	"github.com/dmctl/dmctl/internal/testkit"
)

// StubHub is testkit's stub of the IoT Hub service API with what command
// tests add: pointing an Env at it and running a command line with its CA.
type StubHub struct{ *testkit.StubHub }

// StubAnswer is one scripted answer of the stub.
type StubAnswer = testkit.StubAnswer

// StubReq is a request the stub received.
type StubReq = testkit.StubReq

// OK200 is a 200 answer with a JSON body.
func OK200(body string) StubAnswer { return StubAnswer{Status: 200, Body: body} }

// HubErrBody is an IoT Hub error body in the current shape.
func HubErrBody(code int, msg string) string { return testkit.HubErrBody(code, msg) }

// NewStubHub starts a stub, stopped when the test ends.
func NewStubHub(t *testing.T) *StubHub {
	t.Helper()
	return &StubHub{testkit.NewStubHub(t, nil)}
}

// Env points e's hub client at the stub: a SAS connection string in the
// environment and real file reads (for --ca-file). It returns e.
func (h *StubHub) Env(e *Env) *Env {
	e.F.ReadFile = os.ReadFile
	e.Env["IOTHUB_CONNECTION_STRING"] = "HostName=" + h.Addr() + ";SharedAccessKeyName=service;SharedAccessKey=" + TestKey
	return e
}

// Run runs a command line on e with the stub's CA trusted.
func (h *StubHub) Run(e *Env, args ...string) int {
	return e.Run(append(args, "--ca-file", h.CAFile)...)
}
