package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/dmctl/dmctl/internal/ctxtime"
	"net/url"
	"strings"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Direct methods the agent implements (iothub-contract.md §4.3).
const (
	MethodReboot         = "reboot"
	MethodFactoryReset   = "factoryReset"
	MethodFirmwareUpdate = "firmwareUpdate"
)

// Firmware-update states, in the tutorial's spelling (the same as hubsim's
// simulated devices).
const (
	FwWaiting          = "waiting"
	FwDownloading      = "downloading"
	FwDownloadComplete = "downloadComplete"
	FwApplying         = "applying"
	FwApplyComplete    = "applyComplete"
)

// Factory-reset states.
const (
	ResetResetting = "resetting"
	ResetComplete  = "resetComplete"
)

// onMethod answers a direct method, then acts.
func (a *Agent) onMethod(c paho.Client, topic string, body []byte) {
	rest := strings.TrimPrefix(topic, "$iothub/methods/POST/")
	name, _, _ := strings.Cut(rest, "/")
	if n, err := url.PathUnescape(name); err == nil {
		name = n
	}
	rid := topicParam(topic, "$rid")
	if rid == "" {
		a.emit(Event{Event: "error", Method: name, Reason: "method request without $rid"}, "method %s: request without $rid ignored", name)
		return
	}
	status, resp, act := a.handle(name, body)
	err := wait(a.context(), c.Publish(fmt.Sprintf("$iothub/methods/res/%d/?$rid=%s", status, rid), 0, false, resp), requestTimeout)
	if err != nil {
		a.emit(Event{Event: "error", Method: name, Reason: "answer not sent: " + err.Error()}, "method %s: answer not sent: %v", name, err)
		return
	}
	a.emit(Event{Event: "method", Method: name, Status: status}, "method %s answered %d", name, status)
	if act != nil {
		act()
	}
}

func (a *Agent) context() context.Context {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx == nil {
		return context.Background()
	}
	return a.ctx
}

func message(s string) []byte {
	b, _ := json.Marshal(map[string]string{"message": s})
	return b
}

// handle decides a method's answer and what the device does once it has
// answered (act may be nil; it must not block).
func (a *Agent) handle(method string, payload []byte) (status int, resp []byte, act func()) {
	switch method {
	case MethodReboot:
		return 200, message("Reboot started"), a.reboot
	case MethodFactoryReset:
		return 200, message("Factory reset started"), a.factoryReset
	case MethodFirmwareUpdate:
		uri, problem := fwPackageURI(payload)
		if problem != "" {
			return 400, message(problem), nil
		}
		return 200, message("Firmware update started"), func() {
			gen := a.fwGen.Add(1)
			go a.firmwareUpdate(gen, uri)
		}
	}
	return 404, message("Method '" + method + "' is not implemented by this device"), nil
}

// fwPackageURI reads {"fwPackageUri":"https://..."}; problem is the
// device's answer when the payload is unusable (the SDK sample's text for a
// URI that is not https).
func fwPackageURI(payload []byte) (uri, problem string) {
	var body struct {
		URI any `json:"fwPackageUri"`
	}
	if err := json.Unmarshal(payload, &body); err != nil || body.URI == nil {
		return "", "The payload must be a JSON object with a fwPackageUri."
	}
	s, ok := body.URI.(string)
	if !ok {
		return "", "fwPackageUri must be a string."
	}
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" {
		return "", "Invalid URL format. Must use https:// protocol."
	}
	return s, ""
}

// dm builds {"iothubDM":{section: fields}}.
func dm(section string, fields map[string]any) map[string]any {
	return map[string]any{"iothubDM": map[string]any{section: fields}}
}

// reboot: report startedRebootTime, go offline for the downtime, come back
// and report lastReboot.
func (a *Agent) reboot() {
	a.report(dm(MethodReboot, map[string]any{"startedRebootTime": timestamp(a.now())}))
	a.goOffline("reboot", a.cfg.RebootDowntime, func() {
		a.report(dm(MethodReboot, map[string]any{"lastReboot": timestamp(a.now())}))
	})
}

// factoryReset: status resetting (and startedFactoryResetTime), offline
// for the downtime, then resetComplete with lastFactoryReset. A firmware
// update in progress is abandoned.
func (a *Agent) factoryReset() {
	a.fwGen.Add(1)
	a.report(dm(MethodFactoryReset, map[string]any{"status": ResetResetting, "startedFactoryResetTime": timestamp(a.now())}))
	a.goOffline("factory reset", a.cfg.ResetDowntime, func() {
		a.report(dm(MethodFactoryReset, map[string]any{"status": ResetComplete, "lastFactoryReset": timestamp(a.now())}))
	})
}

// firmwareUpdate walks waiting, downloading, downloadComplete, applying,
// applyComplete one FirmwareStep apart. The download and the image are
// simulated. A newer update (or a factory reset) supersedes it.
func (a *Agent) firmwareUpdate(gen uint64, uri string) {
	a.report(dm(MethodFirmwareUpdate, map[string]any{
		"status": FwWaiting, "fwPackageUri": uri, "error": nil, "startedWaitingTime": timestamp(a.now()),
		// Clear the times of a previous update (null deletes a member);
		// lastFirmwareUpdate stays until this one completes.
		"startedDownloadingTime": nil, "downloadCompleteTime": nil, "startedApplyingImage": nil,
	}))
	steps := []struct{ status, field string }{
		{FwDownloading, "startedDownloadingTime"},
		{FwDownloadComplete, "downloadCompleteTime"},
		{FwApplying, "startedApplyingImage"},
		{FwApplyComplete, "lastFirmwareUpdate"},
	}
	ctx := a.context()
	for _, s := range steps {
		if !ctxtime.SleepOK(ctx, a.cfg.FirmwareStep) || a.fwGen.Load() != gen {
			return
		}
		a.report(dm(MethodFirmwareUpdate, map[string]any{"status": s.status, s.field: timestamp(a.now())}))
	}
}
