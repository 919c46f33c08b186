package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Query headers (iothub-contract.md §2).
const (
	headerMaxItemCount = "x-ms-max-item-count"
	headerContinuation = "x-ms-continuation"
	headerItemType     = "x-ms-item-type"
)

// QueryOptions configures a query pager. A nil *QueryOptions means defaults.
type QueryOptions struct {
	// PageSize asks the hub for at most this many items per page
	// (x-ms-max-item-count); 0 leaves it to the hub, which may also use a
	// different size than asked.
	PageSize int
}

// QueryPage is one page of query results.
type QueryPage struct {
	Items             []json.RawMessage // the items as the hub sent them (twins for FROM devices)
	ItemType          string            // x-ms-item-type, e.g. "twin" or "raw"; "" when absent
	ContinuationToken string            // x-ms-continuation; "" on the last page
}

// QueryPager walks the pages of an IoT Hub query (POST /devices/query),
// feeding x-ms-continuation back until the hub sends none. It is not safe
// for concurrent use. A failed NextPage leaves the pager where it was, so the
// same page can be asked for again (for example under internal/retry).
type QueryPager struct {
	c        *Client
	query    string
	pageSize int
	token    string
	done     bool
}

// NewQueryPager returns a pager for an IoT Hub query such as
// "SELECT * FROM devices WHERE tags.site = 'x'". Nothing is sent until
// NextPage; a bad query or page size is reported there.
func (c *Client) NewQueryPager(query string, opts *QueryOptions) *QueryPager {
	p := &QueryPager{c: c, query: query}
	if opts != nil {
		p.pageSize = opts.PageSize
	}
	return p
}

// More reports whether another page may be fetched: true before the first
// page and while the hub sends a continuation token.
func (p *QueryPager) More() bool { return !p.done }

// errNoMorePages is returned by NextPage after the last page.
var errNoMorePages = errors.New("iothub: the query has no more pages")

// NextPage fetches the next page.
func (p *QueryPager) NextPage(ctx context.Context) (QueryPage, error) {
	if p.done {
		return QueryPage{}, errNoMorePages
	}
	if strings.TrimSpace(p.query) == "" {
		return QueryPage{}, &InputError{Input: "query", Reason: "it is empty"}
	}
	if p.pageSize < 0 {
		return QueryPage{}, &InputError{Input: "page size", Value: strconv.Itoa(p.pageSize), Reason: "it must be 0 (hub default) or more"}
	}
	body, err := marshalNoEscape(struct {
		Query string `json:"query"`
	}{p.query})
	if err != nil {
		return QueryPage{}, &InputError{Input: "query", Reason: err.Error()}
	}
	header := http.Header{}
	if p.pageSize > 0 {
		header.Set(headerMaxItemCount, strconv.Itoa(p.pageSize))
	}
	if p.token != "" {
		header.Set(headerContinuation, p.token)
	}
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	resp, payload, err := p.c.send(ctx, http.MethodPost, []string{"devices", "query"}, header, body)
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
	p.token = page.ContinuationToken
	p.done = strings.TrimSpace(p.token) == ""
	return page, nil
}
