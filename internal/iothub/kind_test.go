package iothub

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

type credFail struct{}

func (credFail) Error() string           { return "no token" }
func (credFail) CredentialFailure() bool { return true }

type netTimeout struct{}

func (netTimeout) Error() string   { return "i/o timeout" }
func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return true }

func TestKindOf(t *testing.T) {
	answer := func(status, code int) error {
		return fmt.Errorf("wrapped: %w", &ResponseError{StatusCode: status, ErrorCode: code})
	}
	for _, tt := range []struct {
		err  error
		want Kind
	}{
		{nil, KindNone},
		{answer(429, 429001), KindThrottled},
		{answer(429, 0), KindThrottled},
		{answer(429, 429004), KindTooManyJobs},
		{answer(503, 503001), KindUnavailable},
		{answer(404, 404103), KindOffline},
		{answer(403, 403800), KindDeviceBusy},
		{answer(504, 504101), KindTimeout},
		{answer(408, 0), KindTimeout},
		{answer(500, 500001), KindServerError},
		{answer(502, 0), KindServerError},
		{answer(401, 401002), KindUnauthorized},
		{answer(403, 0), KindUnauthorized},
		{answer(403, 403002), KindQuota},
		{answer(404, 404001), KindNotFound},
		{answer(404, 404010), KindNotFound},
		{answer(404, 404002), KindNotFound},
		{answer(404, 0), KindNotFound},
		{answer(400, 400004), KindBadRequest},
		{answer(409, 409104), KindConflict},
		{answer(412, 412001), KindConflict},
		{answer(418, 0), KindOther},
		{answer(200, 504101), KindTimeout}, // the code wins over an odd status
		{&TransportError{Err: errors.New("refused")}, KindNotSent},
		{&TransportError{Err: context.DeadlineExceeded}, KindConnectTimeout},
		{&TransportError{Err: netTimeout{}, RequestWritten: true}, KindTimeout},
		{&TransportError{Err: errors.New("reset"), RequestWritten: true}, KindLostAfterWrite},
		{fmt.Errorf("x: %w", credFail{}), KindUnauthorized},
		{context.Canceled, KindCanceled},
		{&TransportError{Err: context.Canceled, RequestWritten: true}, KindCanceled},
		{&InputError{Input: "device id", Reason: "bad"}, KindInput},
		{context.DeadlineExceeded, KindTimeout},
		{errors.New("?"), KindOther},
	} {
		assert.Equal(t, tt.want, KindOf(tt.err), "%v", tt.err)
	}
	// A device job's record carries only the code.
	assert.Equal(t, KindOffline, KindOfAnswer(0, CodeDeviceNotOnline))
	assert.Equal(t, KindTimeout, KindOfAnswer(0, CodeGatewayTimeout))
	assert.Equal(t, KindNotFound, KindOfAnswer(0, CodeDeviceNotFound))
	assert.Equal(t, "lostAfterWrite", KindLostAfterWrite.String())
}

func TestTierLimits(t *testing.T) {
	for _, tt := range []struct {
		tier       string
		units      int
		methods    float64 // calls/s of payloads up to 4 KB
		queries    float64 // per minute
		jobs       float64 // devices per second
		activeJobs int
	}{
		{"S1", 1, 40, 20, 10, 1},
		{"s1", 2, 80, 40, 10, 1},
		{"F1", 1, 40, 20, 10, 1},
		{"S2", 1, 120, 20, 10, 5},
		{"S2", 12, 1440, 240, 12, 5},
		{"S3", 1, 6144, 1000, 50, 10},
		{"S3", 2, 12288, 2000, 100, 10},
	} {
		l, err := TierLimits(tt.tier, tt.units)
		if assert.NoError(t, err) {
			assert.InDelta(t, tt.methods, l.MethodRate(10), 1e-9, "%s x%d", tt.tier, tt.units)
			assert.InDelta(t, tt.methods/2, l.MethodRate(MethodMeterBytes+1), 1e-9, "two meter units")
			assert.Equal(t, tt.queries, l.QueriesPerMinute())
			assert.Equal(t, tt.jobs, l.JobsRate())
			assert.Equal(t, tt.activeJobs, l.MaxActiveJobs())
		}
	}
	_, err := TierLimits("B1", 1)
	assert.EqualError(t, err, `"B1" is not an IoT Hub tier with direct methods (use F1, S1, S2, S3)`)
	_, err = TierLimits("F1", 2)
	assert.EqualError(t, err, "tier F1 has exactly 1 unit (got 2)")
	assert.Equal(t, "S1", DefaultLimits().Tier)
}
