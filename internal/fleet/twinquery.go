package fleet

import (
	"context"
	"fmt"
	"strings"

	"github.com/dmctl/dmctl/internal/iothub"
	"github.com/dmctl/dmctl/internal/retry"
)

// inBatch is one twin query over a list of device ids: its SQL and the
// range [from, to) of the ids it names.
type inBatch struct {
	sql      string
	from, to int
}

// cutIN cuts n device ids (id(i) is the i-th) into queries
// head + 'id', 'id', ... + tail that each stay within the hub's query
// length limit (iothub.MaxQueryLength), and at most maxIDs ids each (0: no
// bound).
func cutIN(head, tail string, n, maxIDs int, id func(int) string) []inBatch {
	var out []inBatch
	var b strings.Builder
	from := 0
	flush := func(to int) {
		if to > from {
			out = append(out, inBatch{sql: head + b.String() + tail, from: from, to: to})
		}
		from = to
		b.Reset()
	}
	for i := range n {
		q := iothub.QuoteString(id(i))
		if i > from && (len(head)+b.Len()+2+len(q)+len(tail) > iothub.MaxQueryLength || maxIDs > 0 && i-from >= maxIDs) {
			flush(i)
		}
		if i > from {
			b.WriteString(", ")
		}
		b.WriteString(q)
	}
	flush(n)
	return out
}

// queryLimiter is l, or without one a pace of qpm queries a minute
// (0: DefaultQueriesPerMinute).
func queryLimiter(l Limiter, qpm float64) Limiter {
	if l != nil {
		return l
	}
	if qpm <= 0 {
		qpm = DefaultQueriesPerMinute
	}
	return NewFixedRate(qpm / 60)
}

// queryRows reads every page of a twin query, each page paced by limit
// (which is told about 429s) and resent as an idempotent read under policy,
// and calls row with each item decoded.
func queryRows(ctx context.Context, twins TwinReader, limit Limiter, policy retry.Policy, sql string, row func(map[string]any) error) error {
	policy.Idempotent = true
	pages := retry.Pages(policy)
	observed := func(ctx context.Context, fetch func(context.Context) error) error {
		return pages(ctx, func(ctx context.Context) error {
			e := fetch(ctx)
			if iothub.KindOf(e) == iothub.KindThrottled {
				limit.Observe(true)
			}
			return e
		})
	}
	pager := twins.Query(sql, iothub.QueryOptions{PageSize: waitPageSize, Retry: observed})
	for pager.More() {
		if err := limit.Wait(ctx); err != nil {
			return err
		}
		page, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, item := range page.Items {
			doc, err := decodeDoc(item)
			if err != nil {
				return fmt.Errorf("%w: a query row: %v", iothub.ErrUnreadableAnswer, err)
			}
			if err := row(doc); err != nil {
				return err
			}
		}
	}
	return nil
}
