// Package cmdtest is the test environment of dmctl's commands: a factory
// with buffered streams, a fixed clock, a controlled environment and a
// scripted method invoker, and a way to run a command line through
// cmdutil.Execute on a tree the test chooses. It is imported by _test files
// only.
package cmdtest

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/dmctl/dmctl/internal/auth"
	"github.com/dmctl/dmctl/internal/cli/cmdutil"
	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/fleet"
	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/output"
)

// TestKey is the service key of SASCredential: base64("dmctl-test-key-0123456789").
const TestKey = "ZG1jdGwtdGVzdC1rZXktMDEyMzQ1Njc4OQ=="

// FixedNow is the factory's clock.
var FixedNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// Answer is one scripted answer of the FakeInvoker.
type Answer struct {
	Res iothub.MethodResult
	Err error
}

// OK is a device's answer with status and payload.
func OK(status int, payload string) Answer {
	return Answer{Res: iothub.MethodResult{Status: status, Payload: json.RawMessage(payload)}}
}

// HubErr is the hub refusing the call.
func HubErr(status, code int, name, msg string) Answer {
	return Answer{Err: &iothub.ResponseError{StatusCode: status, ErrorCode: code, ErrorCodeName: name, Message: msg, TrackingID: "trk-" + name}}
}

// FakeInvoker answers per target from a script; the last answer repeats,
// and a target without a script answers 200 with null.
type FakeInvoker struct {
	mu      sync.Mutex
	Scripts map[string][]Answer
	Calls   []fleet.Target
	Reqs    []iothub.MethodRequest
}

// Invoke implements fleet.Invoker.
func (f *FakeInvoker) Invoke(_ context.Context, t fleet.Target, req iothub.MethodRequest) (iothub.MethodResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls = append(f.Calls, t)
	f.Reqs = append(f.Reqs, req)
	s := f.Scripts[t.String()]
	if len(s) == 0 {
		return iothub.MethodResult{Status: 200, Payload: json.RawMessage(`null`)}, nil
	}
	a := s[0]
	if len(s) > 1 {
		f.Scripts[t.String()] = s[1:]
	}
	return a.Res, a.Err
}

// SASCredential is the credential Env's invoker reports: a SAS policy of
// hub.example.test from IOTHUB_CONNECTION_STRING.
func SASCredential() *auth.Credential {
	cs, err := connstr.ParseService("HostName=hub.example.test;SharedAccessKeyName=service;SharedAccessKey=" + TestKey)
	if err != nil {
		panic(err)
	}
	return &auth.Credential{Method: auth.MethodSAS, Host: cs.HostName, Source: auth.EnvConnectionString, ConnectionString: cs}
}

// Env is one test's factory, streams, environment and invoker.
type Env struct {
	F           *cmdutil.Factory
	IOS         *output.IOStreams
	In          *bytes.Buffer
	Out, ErrOut *bytes.Buffer
	Inv         *FakeInvoker
	Cred        *auth.Credential
	Env         map[string]string
	Tmp         string // TempDir for spool files, "" for the system's
	// Tree builds the command tree Run runs (cmdutil.NewRootCmd and the
	// commands under test).
	Tree func(f *cmdutil.Factory) *cobra.Command
}

// New returns an Env whose invoker follows scripts and whose tree is tree.
func New(t *testing.T, scripts map[string][]Answer, tree func(f *cmdutil.Factory) *cobra.Command) *Env {
	t.Helper()
	ios, in, out, errOut := output.Test()
	e := &Env{IOS: ios, In: in, Out: out, ErrOut: errOut, Inv: &FakeInvoker{Scripts: scripts}, Cred: SASCredential(),
		Env: map[string]string{}, Tree: tree}
	e.F = &cmdutil.Factory{
		IOStreams: ios,
		LookupEnv: func(k string) (string, bool) { v, ok := e.Env[k]; return v, ok },
		Now:       func() time.Time { return FixedNow },
		Sleep:     func(context.Context, time.Duration) error { return nil },
		Global:    &cmdutil.GlobalOptions{},
	}
	e.F.Invoker = func() (fleet.Invoker, *auth.Credential, error) { return e.Inv, e.Cred, nil }
	return e
}

// NewUnderRoot is New for one command package: its command under cmdutil's
// root.
func NewUnderRoot(t *testing.T, scripts map[string][]Answer, cmd func(f *cmdutil.Factory) *cobra.Command) *Env {
	t.Helper()
	return New(t, scripts, func(f *cmdutil.Factory) *cobra.Command { return Root(f, cmd(f)) })
}

// Root is cmdutil's root with cmds added, for a Tree.
func Root(f *cmdutil.Factory, cmds ...*cobra.Command) *cobra.Command {
	root := cmdutil.NewRootCmd(f)
	root.AddCommand(cmds...)
	return root
}

// Run runs one command line on a fresh tree and returns the exit code.
func (e *Env) Run(args ...string) int {
	return e.RunContext(context.Background(), args...)
}

// RunContext is Run with a context (cancelled: Ctrl-C).
func (e *Env) RunContext(ctx context.Context, args ...string) int {
	return cmdutil.Execute(ctx, e.F, e.Tree(e.F), args)
}
