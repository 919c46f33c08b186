package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// Invoker makes exactly one attempt of a direct method call on one target.
// Retries are the runner's (through internal/retry), never the invoker's.
type Invoker interface {
	Invoke(ctx context.Context, t Target, req iothub.MethodRequest) (iothub.MethodResult, error)
}

// ClientInvoker is the Invoker over the IoT Hub REST client: a device method
// when the target has no module, a module method otherwise.
type ClientInvoker struct {
	Client *iothub.Client
}

// Invoke implements Invoker.
func (c ClientInvoker) Invoke(ctx context.Context, t Target, req iothub.MethodRequest) (iothub.MethodResult, error) {
	if t.ModuleID == "" {
		return c.Client.InvokeDeviceMethod(ctx, t.DeviceID, req)
	}
	return c.Client.InvokeModuleMethod(ctx, t.DeviceID, t.ModuleID, req)
}

// RunOptions says what to invoke and how. The zero value of each field is
// documented on it.
type RunOptions struct {
	// Request is the method call sent to every target.
	Request iothub.MethodRequest
	// OKStatus decides which device statuses count as success; zero means any 2xx.
	OKStatus StatusSet
	// Retry bounds and classifies resends; see internal/retry.
	Retry retry.Policy
	// OnResult, when set, receives every result as soon as it is final, in
	// completion order, before Run returns; skipped targets included. It is
	// never called concurrently.
	OnResult func(Result)
	// Now is the clock for start times and durations; nil means time.Now.
	Now func() time.Time
}

// Runner invokes a method on a list of targets. For now it runs them one
// after another; the options and the OnResult seam are where concurrency,
// rate limits, journals and waves will plug in.
type Runner struct {
	Invoker Invoker
}

// NewRunner returns a Runner that calls inv.
func NewRunner(inv Invoker) *Runner { return &Runner{Invoker: inv} }

// Run invokes opts.Request on every target and returns one result per
// target, in target order. When ctx is cancelled it stops starting new calls,
// marks the rest skipped and returns the results with ctx's error.
func (r *Runner) Run(ctx context.Context, targets []Target, opts RunOptions) ([]Result, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	results := make([]Result, 0, len(targets))
	emit := func(res Result) {
		results = append(results, res)
		if opts.OnResult != nil {
			opts.OnResult(res)
		}
	}
	for _, t := range targets {
		if ctx.Err() != nil {
			emit(skipped(t, opts.Request.MethodName, now()))
			continue
		}
		emit(r.one(ctx, t, opts, now))
	}
	return results, ctx.Err()
}

func (r *Runner) one(ctx context.Context, t Target, opts RunOptions, now func() time.Time) Result {
	res := Result{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Method: opts.Request.MethodName}
	start := now()
	var answer iothub.MethodResult
	attempts, err := retry.Do(ctx, opts.Retry, func(ctx context.Context, attempt int) error {
		var callErr error
		answer, callErr = r.Invoker.Invoke(ctx, t, opts.Request)
		return callErr
	})
	if attempts == 0 && ctx.Err() != nil {
		return skipped(t, opts.Request.MethodName, start) // cancelled before the first attempt
	}
	res.StartTime = start.UTC()
	res.DurationMs = millis(now().Sub(start))
	res.Attempts = attempts
	res.Outcome = OutcomeOf(answer, err, opts.OKStatus)
	if err != nil {
		res.Error = ErrorFrom(err)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			res.Error = &ResultError{Message: "interrupted before the device answered (it may have run the method)"}
		}
		return res
	}
	status := answer.Status
	res.Status = &status
	res.Payload = answer.Payload
	if len(res.Payload) == 0 {
		res.Payload = json.RawMessage("null")
	}
	return res
}

func skipped(t Target, method string, at time.Time) Result {
	return Result{DeviceID: t.DeviceID, ModuleID: t.ModuleID, Method: method, Outcome: OutcomeSkipped,
		StartTime: at.UTC()}
}

// millis is d in milliseconds, rounded to the microsecond.
func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}
