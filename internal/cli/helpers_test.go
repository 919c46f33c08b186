package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

const testKey = "ZG1jdGwtdGVzdC1rZXktMDEyMzQ1Njc4OQ==" // base64("dmctl-test-key-0123456789")

var fixedNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

type answer struct {
	res iothub.MethodResult
	err error
}

func ok(status int, payload string) answer {
	return answer{res: iothub.MethodResult{Status: status, Payload: json.RawMessage(payload)}}
}

func hubErr(status, code int, name, msg string) answer {
	return answer{err: &iothub.ResponseError{StatusCode: status, ErrorCode: code, ErrorCodeName: name, Message: msg, TrackingID: "trk-" + name}}
}

// fakeInvoker answers per target from a script; the last answer repeats.
type fakeInvoker struct {
	mu      sync.Mutex
	scripts map[string][]answer
	calls   []fleet.Target
	reqs    []iothub.MethodRequest
}

func (f *fakeInvoker) Invoke(_ context.Context, t fleet.Target, req iothub.MethodRequest) (iothub.MethodResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, t)
	f.reqs = append(f.reqs, req)
	s := f.scripts[t.String()]
	if len(s) == 0 {
		return iothub.MethodResult{Status: 200, Payload: json.RawMessage(`null`)}, nil
	}
	a := s[0]
	if len(s) > 1 {
		f.scripts[t.String()] = s[1:]
	}
	return a.res, a.err
}

func sasCredential() *auth.Credential {
	cs, err := connstr.ParseService("HostName=hub.Example.test;SharedAccessKeyName=service;SharedAccessKey=" + testKey)
	if err != nil {
		panic(err)
	}
	return &auth.Credential{Method: auth.MethodSAS, Host: cs.HostName, Source: auth.EnvConnectionString, ConnectionString: cs}
}

type testEnv struct {
	f           *cmdutil.Factory
	ios         *output.IOStreams
	in          *bytes.Buffer
	out, errOut *bytes.Buffer
	inv         *fakeInvoker
	cred        *auth.Credential
	env         map[string]string
	tmp         string // TempDir for spool files, "" for the system's
}

func newTestEnv(t *testing.T, scripts map[string][]answer) *testEnv {
	t.Helper()
	ios, in, out, errOut := output.Test()
	te := &testEnv{ios: ios, in: in, out: out, errOut: errOut, inv: &fakeInvoker{scripts: scripts}, cred: sasCredential(), env: map[string]string{}}
	te.f = &cmdutil.Factory{
		IOStreams: ios,
		LookupEnv: func(k string) (string, bool) { v, ok := te.env[k]; return v, ok },
		Now:       func() time.Time { return fixedNow },
		Sleep:     func(context.Context, time.Duration) error { return nil },
		Global:    &cmdutil.GlobalOptions{},
	}
	te.f.Invoker = func() (fleet.Invoker, *auth.Credential, error) { return te.inv, te.cred, nil }
	return te
}

func (te *testEnv) run(args ...string) int {
	return Run(context.Background(), te.f, args)
}
