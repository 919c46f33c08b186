package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// Query headers (iothub-contract.md §2).
const (
	headerMaxItemCount = "x-ms-max-item-count"
	headerContinuation = "x-ms-continuation"
	headerItemType     = "x-ms-item-type"
)

// PageRetry runs one page fetch, sending it again while that is allowed
// (internal/retry's Pages); nil fetches once.
type PageRetry func(ctx context.Context, fetch func(context.Context) error) error

// Run applies r to fetch: a nil r fetches once. Pagers, and the fakes that
// stand in for them in tests, apply their retry through it.
func (r PageRetry) Run(ctx context.Context, fetch func(context.Context) error) error {
	if r == nil {
		return fetch(ctx)
	}
	return r(ctx, fetch)
}

// QueryOptions configures a query pager. A nil *QueryOptions means defaults.
type QueryOptions struct {
	// PageSize asks the hub for at most this many items per page
	// (x-ms-max-item-count); 0 leaves it to the hub, which may also use a
	// different size than asked.
	PageSize int
	// Retry resends a page fetch that failed; nil: one attempt. (azcore's
	// pager stops for good on an error, so resends happen inside a fetch.)
	Retry PageRetry
}

// QueryPage is one page of query results.
type QueryPage struct {
	Items             []json.RawMessage // the items as the hub sent them (twins for FROM devices)
	ItemType          string            // x-ms-item-type, e.g. "twin" or "raw"; "" when absent
	ContinuationToken string            // x-ms-continuation; "" on the last page
}

// QueryPager walks the pages of an IoT Hub query (POST /devices/query),
// feeding x-ms-continuation back until the hub sends none: azcore's
// runtime.Pager. It is not safe for concurrent use; after a failed page
// (resends included) it has no more pages.
type QueryPager = runtime.Pager[QueryPage]

// NewQueryPager returns a pager for an IoT Hub query such as
// "SELECT * FROM devices WHERE tags.site = 'x'". Nothing is sent until
// NextPage; a bad query or page size is reported there.
func (c *Client) NewQueryPager(query string, opts *QueryOptions) *QueryPager {
	var o QueryOptions
	if opts != nil {
		o = *opts
	}
	return runtime.NewPager(runtime.PagingHandler[QueryPage]{
		More: func(p QueryPage) bool { return strings.TrimSpace(p.ContinuationToken) != "" },
		Fetcher: func(ctx context.Context, cur *QueryPage) (QueryPage, error) {
			token := ""
			if cur != nil {
				token = cur.ContinuationToken
			}
			var page QueryPage
			err := o.Retry.Run(ctx, func(ctx context.Context) error {
				var e error
				page, e = c.queryPage(ctx, query, o.PageSize, token)
				return e
			})
			return page, err
		},
	})
}

// queryPage fetches one page of query after the continuation token.
func (c *Client) queryPage(ctx context.Context, query string, pageSize int, token string) (QueryPage, error) {
	if strings.TrimSpace(query) == "" {
		return QueryPage{}, &InputError{Input: "query", Reason: "it is empty"}
	}
	if pageSize < 0 {
		return QueryPage{}, &InputError{Input: "page size", Value: strconv.Itoa(pageSize), Reason: "it must be 0 (hub default) or more"}
	}
	body, err := marshalNoEscape(struct {
		Query string `json:"query"`
	}{query})
	if err != nil {
		return QueryPage{}, &InputError{Input: "query", Reason: err.Error()}
	}
	header := http.Header{}
	if pageSize > 0 {
		header.Set(headerMaxItemCount, strconv.Itoa(pageSize))
	}
	if token != "" {
		header.Set(headerContinuation, token)
	}
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	resp, payload, err := c.send(ctx, http.MethodPost, []string{"devices", "query"}, header, body)
	if err != nil {
		return QueryPage{}, err
	}
	if !isSuccess(resp.StatusCode) {
		return QueryPage{}, parseError(resp.StatusCode, resp.Header, payload, time.Now())
	}
	trimmed := bytes.TrimSpace(payload)
	var items []json.RawMessage
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return QueryPage{}, unreadable(resp, payload, "a query page must be a JSON array")
	}
	if err := json.Unmarshal(trimmed, &items); err != nil {
		return QueryPage{}, unreadable(resp, payload, fmt.Sprintf("a query page must be a JSON array: %v", err))
	}
	page := QueryPage{
		Items:             items,
		ItemType:          strings.TrimSpace(resp.Header.Get(headerItemType)),
		ContinuationToken: resp.Header.Get(headerContinuation),
	}
	return page, nil
}
