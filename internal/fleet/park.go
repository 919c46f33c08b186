package fleet

import (
	"context"
	"sync"
	"time"

	"github.com/dmctl/dmctl/internal/retry"
)

// MaxUntilOnline is the longest --until-online.
const MaxUntilOnline = 30 * 24 * time.Hour

// Park parks the targets whose device was offline (404103) instead of
// failing them (--until-online): their connectionState is watched with
// batched twin queries, paced like the wait's, and each is called again as
// soon as it is connected, until For has passed since it was first found
// offline (then it ends offline). A device that goes offline again before
// its call is delivered is parked again; one that got the method is done:
// no device is called twice.
type Park struct {
	For   time.Duration
	Twins TwinReader
	// QueriesPerMinute paces the queries (0: DefaultQueriesPerMinute);
	// Limiter, when set, paces them instead: give the wait the same one, so
	// that both stay within the hub's query throttle together.
	QueriesPerMinute float64
	Limiter          Limiter
	// Interval is the least time between two looks at a target (0:
	// DefaultWaitInterval).
	Interval time.Duration
	Retry    retry.Policy
}

// connectedCondition is what a parked target waits for.
var connectedCondition = Condition{Path: []string{"connectionState"}, Values: []string{"Connected"}, Text: "connectionState == Connected"}

// parker runs the parked targets of a run on an awaiter whose wait is
// connectionState == Connected.
type parker struct {
	ru  *run
	aw  *awaiter
	For time.Duration

	mu     sync.Mutex
	cond   *sync.Cond
	open   map[Target]*parked // parked, or being called again
	parked int                // targets parked at least once (Summary.Parked)
	unpark int                // calls made to parked targets once connected
	calls  sync.WaitGroup
}

// parked is one parked target's bookkeeping.
type parked struct {
	first    time.Time // when it was first found offline
	attempts int       // calls sent to it before this one
}

func newParker(ru *run, p *Park, now func() time.Time, sleep func(context.Context, time.Duration) error) *parker {
	pk := &parker{ru: ru, For: p.For, open: map[Target]*parked{}}
	pk.cond = sync.NewCond(&pk.mu)
	w := &Wait{Until: []Condition{connectedCondition}, Timeout: p.For, Twins: p.Twins, QueriesPerMinute: p.QueriesPerMinute,
		Interval: p.Interval, Retry: p.Retry, Limiter: p.Limiter}
	pk.aw = newAwaiter(w, now, sleep, pk.settle)
	return pk
}

// add parks t, whose call res found its device offline. The first time,
// its window opens; a target parked again keeps its first deadline.
func (pk *parker) add(res Result) {
	t := res.Target()
	now := pk.aw.now()
	pk.mu.Lock()
	p, again := pk.open[t]
	if !again {
		p = &parked{first: now}
		pk.open[t] = p
		pk.parked++
		pk.ru.progress.parked.Add(1)
	}
	p.attempts += res.Attempts
	res.Attempts = p.attempts
	deadline := p.first.Add(pk.For)
	pk.mu.Unlock()
	if !again && pk.ru.opts.Journal != nil {
		if err := pk.ru.opts.Journal.Parked(t, now); err != nil {
			pk.ru.journalFailed(err)
		}
	}
	pk.aw.addUntil(res, deadline)
}

// settle is the awaiter's verdict on a parked target: connected (call it
// again), its window ended (offline), or the run stopped (skipped).
func (pk *parker) settle(r Result) {
	t := r.Target()
	if r.Outcome == OutcomeSucceeded && pk.ru.dispatch.Err() == nil {
		pk.mu.Lock()
		pk.unpark++
		pk.mu.Unlock()
		pk.calls.Add(1)
		go func() {
			defer pk.calls.Done()
			if err := pk.ru.slots.acquire(pk.ru.dispatch); err != nil {
				pk.done(stopped(r))
				return
			}
			pk.ru.runOne(t) // parks it again, or hands its result on (take)
		}()
		return
	}
	res := r
	res.WaitMs, res.WaitValue = 0, nil
	if pk.ru.dispatch.Err() != nil {
		res = stopped(r)
	} else {
		res.Outcome = OutcomeOffline
		pk.mu.Lock()
		first := pk.open[t].first
		pk.mu.Unlock()
		res.Error = NewResultError(0, "", "the device did not connect within --until-online "+pk.For.String()+
			" (parked since "+first.UTC().Format(time.RFC3339)+")")
	}
	pk.done(res)
}

// stopped is a parked target's result when the run stopped first:
// skipped, so that --resume parks it again (it never got the method).
func stopped(r Result) Result {
	res := r
	res.WaitMs, res.WaitValue = 0, nil
	res.Outcome = OutcomeSkipped
	res.Error = NewResultError(0, "", "not run: the device was offline, parked when the run stopped (--until-online)")
	return res
}

// done hands a parked target's final result on and closes it.
func (pk *parker) done(res Result) {
	pk.ru.results <- res
	pk.close(res.Target())
}

// take is called with the result of a call that did not park its target:
// for a target that was parked, it counts the earlier calls into res.
// close must follow once res is handed on.
func (pk *parker) take(res *Result) bool {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	p, ok := pk.open[res.Target()]
	if ok {
		res.Attempts += p.attempts
	}
	return ok
}

// close ends t's parking.
func (pk *parker) close(t Target) {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	if _, ok := pk.open[t]; ok {
		delete(pk.open, t)
		pk.ru.progress.parked.Add(-1)
		pk.cond.Broadcast()
	}
}

// counts are the Summary's parking figures.
func (pk *parker) counts() (parked, called int) {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	return pk.parked, pk.unpark
}

// finish waits until no target is parked or being called again, then
// stops the awaiter.
func (pk *parker) finish() {
	pk.mu.Lock()
	for len(pk.open) > 0 {
		pk.cond.Wait()
	}
	pk.mu.Unlock()
	pk.calls.Wait()
	pk.aw.finish()
}
