package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dmctl/dmctl/internal/connstr"
	"github.com/dmctl/dmctl/internal/sas"
	"github.com/dmctl/dmctl/internal/testkit"
)

// hubsimReady is the part of hubsim's ready line these tests use.
type hubsimReady struct {
	HTTPSAddr                    string            `json:"httpsAddr"`
	MQTTAddr                     string            `json:"mqttAddr"`
	CAFile                       string            `json:"caFile"`
	HostName                     string            `json:"hostName"`
	ServiceConnectionString      string            `json:"serviceConnectionString"`
	RegistryReadConnectionString string            `json:"registryReadConnectionString"`
	DeviceConnectionStrings      map[string]string `json:"deviceConnectionStrings"`
	Devices                      int               `json:"devices"`
	PID                          int               `json:"pid"`
}

// lockedBuffer collects a child's output (it is testkit's SyncBuffer).
// String shows it redacted, as it ends up in failure messages; the embedded
// SyncBuffer's String is the text as written.
type lockedBuffer struct{ testkit.SyncBuffer }

func (l *lockedBuffer) String() string { return connstr.Redact(l.SyncBuffer.String()) }

type hubsimProc struct {
	ready  hubsimReady
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
	client *http.Client
}

// startHubsimBinary runs the built hubsim with args and waits for its ready line.
func startHubsimBinary(t *testing.T, args ...string) *hubsimProc {
	t.Helper()
	cmd := exec.Command(binary(t, "hubsim"), args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &hubsimProc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
	})

	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		require.True(t, ok, "hubsim exited without a ready line; stderr:\n%s", p.stderr.String())
		require.NoError(t, json.Unmarshal([]byte(line), &p.ready), "ready line is JSON")
	case <-time.After(60 * time.Second):
		t.Fatalf("no ready line within 60s; stderr:\n%s", p.stderr.String())
	}

	pem, err := os.ReadFile(p.ready.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	p.client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		Timeout:   60 * time.Second,
	}
	return p
}

// serviceToken signs a SAS token from a service connection string.
func serviceToken(t *testing.T, cs string, ttl time.Duration) string {
	t.Helper()
	c, err := connstr.Parse(cs)
	require.NoError(t, err)
	key, err := sas.DecodeKey(c.SharedAccessKey)
	require.NoError(t, err)
	return sas.NewToken(c.HostName, c.SharedAccessKeyName, key, time.Now().Add(ttl))
}

type hubAnswer struct {
	status    int
	header    http.Header
	body      []byte
	errorCode int
	message   string
	info      map[string]any
}

func (p *hubsimProc) do(t *testing.T, method, path, auth, body string, hdr map[string]string) hubAnswer {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+p.ready.HostName+path, strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := p.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := hubAnswer{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode != http.StatusOK {
		var outer struct {
			Message          string
			ExceptionMessage *string
		}
		require.NoError(t, json.Unmarshal(b, &outer), "error body: %s", b)
		require.NotNil(t, outer.ExceptionMessage, "error body has ExceptionMessage: %s", b)
		var inner struct {
			ErrorCode int            `json:"errorCode"`
			Message   string         `json:"message"`
			Info      map[string]any `json:"info"`
		}
		require.NoError(t, json.Unmarshal([]byte(outer.Message), &inner), "inner error: %s", outer.Message)
		a.errorCode, a.message, a.info = inner.ErrorCode, inner.Message, inner.Info
		assert.NotEmpty(t, resp.Header.Get("iothub-errorcode"))
		assert.NotEmpty(t, resp.Header.Get("x-ms-request-id"))
	}
	return a
}

const apiVersion = "?api-version=2021-04-12"

func TestHubsimBinaryOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	methodLog := filepath.Join(dir, "methods.jsonl")
	p := startHubsimBinary(t, "--dir", filepath.Join(dir, "hub"), "--devices", "1000", "--register", "offline-1",
		"--no-throttle", "--method-log", methodLog)
	r := p.ready
	require.Equal(t, 1001, r.Devices)
	require.Contains(t, r.DeviceConnectionStrings, "offline-1")
	svc := serviceToken(t, r.ServiceConnectionString, time.Hour)
	invoke := func(device, auth, body string) hubAnswer {
		return p.do(t, http.MethodPost, "/twins/"+device+"/methods"+apiVersion, auth, body, nil)
	}

	t.Run("ok", func(t *testing.T) {
		a := invoke("sim-000001", svc, `{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		assert.Equal(t, "application/json; charset=utf-8", a.header.Get("Content-Type"))
		var res struct {
			Status  *int            `json:"status"`
			Payload json.RawMessage `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(a.body, &res))
		require.NotNil(t, res.Status)
		assert.Equal(t, 200, *res.Status)
		assert.NotEmpty(t, res.Payload)
		rid := a.header.Get("x-ms-request-id")
		require.NotEmpty(t, rid)
		// Ground truth: the delivery is in the method log within the flush interval.
		require.Eventually(t, func() bool {
			b, _ := os.ReadFile(methodLog)
			return bytes.Contains(b, []byte(`"requestId":"`+rid+`"`))
		}, 5*time.Second, 50*time.Millisecond)
		b, _ := os.ReadFile(methodLog)
		assert.Contains(t, string(b), `"deviceId":"sim-000001"`)
		assert.Contains(t, string(b), `"method":"reboot"`)
	})
	t.Run("offline device", func(t *testing.T) {
		a := invoke("offline-1", svc, `{"methodName":"reboot"}`)
		assert.Equal(t, http.StatusNotFound, a.status)
		assert.Equal(t, 404103, a.errorCode)
		assert.Equal(t, "DeviceNotOnline", a.header.Get("iothub-errorcode"))
		assert.Equal(t, map[string]any{"timeout": "00:00:00"}, a.info)
	})
	t.Run("unknown device", func(t *testing.T) {
		a := invoke("no-such-device", svc, `{"methodName":"reboot"}`)
		assert.Equal(t, http.StatusNotFound, a.status)
		assert.Equal(t, 404001, a.errorCode)
		assert.Equal(t, "DeviceNotFound", a.header.Get("iothub-errorcode"))
	})
	t.Run("wrong key", func(t *testing.T) {
		c, err := connstr.Parse(r.ServiceConnectionString)
		require.NoError(t, err)
		wrong := sas.NewToken(c.HostName, "service", bytes.Repeat([]byte{7}, 32), time.Now().Add(time.Hour))
		a := invoke("sim-000002", wrong, `{"methodName":"reboot"}`)
		assert.Equal(t, http.StatusUnauthorized, a.status)
		assert.Equal(t, 401002, a.errorCode)
	})
	t.Run("expired token", func(t *testing.T) {
		a := invoke("sim-000002", serviceToken(t, r.ServiceConnectionString, -time.Minute), `{"methodName":"reboot"}`)
		assert.Equal(t, http.StatusUnauthorized, a.status)
		assert.Equal(t, 401002, a.errorCode)
		assert.Contains(t, a.message, "expired")
	})
	t.Run("missing authorization", func(t *testing.T) {
		a := invoke("sim-000002", "", `{"methodName":"reboot"}`)
		assert.Equal(t, http.StatusUnauthorized, a.status)
		assert.Equal(t, 401003, a.errorCode)
	})
	t.Run("missing permission", func(t *testing.T) {
		a := invoke("sim-000002", serviceToken(t, r.RegistryReadConnectionString, time.Hour), `{"methodName":"reboot"}`)
		assert.Equal(t, http.StatusUnauthorized, a.status)
		assert.Equal(t, 401003, a.errorCode)
		assert.Equal(t, "IotHubUnauthorized", a.header.Get("iothub-errorcode"))
	})
	t.Run("out-of-range timeout", func(t *testing.T) {
		a := invoke("sim-000002", svc, `{"methodName":"reboot","responseTimeoutInSeconds":301}`)
		assert.Equal(t, http.StatusBadRequest, a.status)
		assert.Equal(t, 400004, a.errorCode)
		assert.Equal(t, "responseTimeoutInSeconds must be within [5; 300].", a.message)
	})
	t.Run("paged query over 1000 devices", func(t *testing.T) {
		reader := serviceToken(t, r.RegistryReadConnectionString, time.Hour)
		seen := map[string]bool{}
		cont := ""
		pages := 0
		for {
			hdr := map[string]string{"x-ms-max-item-count": "100"}
			if cont != "" {
				hdr["x-ms-continuation"] = cont
			}
			a := p.do(t, http.MethodPost, "/devices/query"+apiVersion, reader,
				`{"query":"SELECT * FROM devices WHERE STARTSWITH(deviceId, 'sim-')"}`, hdr)
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			pages++
			var items []map[string]any
			require.NoError(t, json.Unmarshal(a.body, &items), "body is a bare JSON array")
			for _, it := range items {
				id, _ := it["deviceId"].(string)
				assert.False(t, seen[id], "device %s returned twice", id)
				seen[id] = true
			}
			vals, more := a.header["X-Ms-Continuation"]
			if !more {
				break
			}
			require.Len(t, vals, 1)
			require.NotEmpty(t, vals[0])
			cont = vals[0]
			require.Less(t, pages, 50, "paging never ends")
		}
		assert.Len(t, seen, 1000)
		assert.Equal(t, 10, pages)
		assert.True(t, seen["sim-000001"] && seen["sim-001000"])
	})

	t.Run("stats", func(t *testing.T) {
		a := p.do(t, http.MethodGet, "/hubsim/stats", "", "", nil)
		require.Equal(t, http.StatusOK, a.status)
		var st struct {
			MethodsDelivered int64 `json:"methodsDelivered"`
			Devices          int   `json:"devices"`
		}
		require.NoError(t, json.Unmarshal(a.body, &st))
		assert.Equal(t, 1001, st.Devices)
		assert.GreaterOrEqual(t, st.MethodsDelivered, int64(1))
	})

	// SIGTERM: clean stop, exit status 0.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		assert.NoError(t, err, "exit status 0 after SIGTERM; stderr:\n%s", p.stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("hubsim did not stop within 15s of SIGTERM; stderr:\n%s", p.stderr.String())
	}
	assert.Contains(t, p.stderr.String(), "hubsim: stopped")
	assert.NotContains(t, p.stderr.SyncBuffer.String(), "SharedAccessKey=", "no secrets on stderr (as written, not redacted)")
}

func TestHubsimBinaryBadFlagExits2(t *testing.T) {
	var stderr bytes.Buffer
	cmd := exec.Command(binary(t, "hubsim"), "--tier", "S7")
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Contains(t, stderr.String(), "--tier")
}

func TestHubsimBinarySIGINT(t *testing.T) {
	p := startHubsimBinary(t)
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	select {
	case err := <-p.done:
		assert.NoError(t, err, "stderr:\n%s", p.stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("hubsim did not stop on SIGINT; stderr:\n%s", p.stderr.String())
	}
	_, err := os.Stat(p.ready.CAFile)
	assert.True(t, os.IsNotExist(err), "the temporary directory is removed on exit")
}
