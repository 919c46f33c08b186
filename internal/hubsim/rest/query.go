package rest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/fnv"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/dmctl/dmctl/internal/hubsim/query"
)

// Query paging (contract §2).
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// selectStar recognises SELECT [TOP n] * (items are whole twins: item type "twin").
var selectStar = regexp.MustCompile(`(?is)^\s*select\s+(top\s+\d+\s+)?\*`)

// continuation is the decoded x-ms-continuation token: where the last page
// ended, how many rows were sent so far (for TOP) and which query it belongs to.
type continuation struct {
	Cursor string `json:"c"`
	Sent   int    `json:"n"`
	Query  uint32 `json:"q"`
}

func queryHash(sql string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(sql))
	return h.Sum32()
}

func encodeContinuation(c continuation) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinuation(tok string) (continuation, bool) {
	var c continuation
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(tok), "="))
	if err != nil || json.Unmarshal(b, &c) != nil || c.Sent < 0 {
		return continuation{}, false
	}
	return c, true
}

// queryRequest is a decoded POST /devices/query.
type queryRequest struct {
	sql      string
	q        *query.Query
	pageSize int
	cont     continuation
}

// decodeQuery reads the QuerySpecification, the page size and the
// continuation token.
func decodeQuery(_ *Handler, c *call) *hubError {
	r := c.r
	body, err := readBody(r)
	if err != nil {
		return bodyError(err)
	}
	var spec struct {
		Query *string `json:"query"`
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return newError(CodeIotHubFormatError, `The request body is empty; expected {"query":"SELECT ..."}.`)
	}
	if err := json.Unmarshal(body, &spec); err != nil {
		return newError(CodeIotHubFormatError, "The request body is not a valid QuerySpecification JSON object: "+jsonErrorText(err))
	}
	if spec.Query == nil || strings.TrimSpace(*spec.Query) == "" {
		return newError(CodeArgumentInvalid, "The query is required.")
	}
	sql := *spec.Query
	q, err := query.Parse(sql)
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return newError(CodeArgumentInvalid, capitalize(qe.Error()))
		}
		return newError(CodeArgumentInvalid, capitalize(err.Error()))
	}
	pageSize, herr := maxItemCount(r)
	if herr != nil {
		return herr
	}
	hash := queryHash(sql)
	cont := continuation{Query: hash}
	if v := r.Header.Get("x-ms-continuation"); v != "" {
		c, ok := decodeContinuation(v)
		if !ok || c.Query != hash {
			return newError(CodeArgumentInvalid, "The x-ms-continuation token is not valid for this query.")
		}
		cont = c
	}
	c.in = queryRequest{sql: sql, q: q, pageSize: pageSize, cont: cont}
	return nil
}

// maxItemCount is the page size a client asks with x-ms-max-item-count.
func maxItemCount(r *http.Request) (int, *hubError) {
	pageSize := defaultPageSize
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return 0, newError(CodeArgumentInvalid, "The x-ms-max-item-count header must be a whole number of at least 1.")
		}
		pageSize = min(n, maxPageSize)
	}
	return pageSize, nil
}

// serveQuery serves POST /devices/query: body {"query":"<SQL>"}, a bare
// JSON array of items, paged with x-ms-max-item-count and x-ms-continuation
// (absent on the last page), item kind in x-ms-item-type.
func (h *Handler) serveQuery(c *call) int {
	in := c.in.(queryRequest)
	sql, q, pageSize, cont := in.sql, in.q, in.pageSize, in.cont
	hash := cont.Query

	itemType := "raw"
	if selectStar.MatchString(sql) {
		itemType = "twin"
	}
	each := h.reg.Each
	if q.From() == query.DevicesJobs {
		each = h.eachDeviceJob // device-job records of the job engine
		itemType = "deviceJob"
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	next := ""
	switch {
	case q.IsAggregate():
		rows, err := q.Run(func(yield func(map[string]any) bool) {
			each(string(q.From()), "", func(_ string, doc map[string]any) bool { return yield(doc) })
		})
		if err == nil {
			for i, row := range rows {
				if i > 0 {
					buf.WriteByte(',')
				}
				b, e := json.Marshal(row)
				if e != nil {
					err = e
					break
				}
				buf.Write(b)
			}
		}
		if err != nil {
			h.log.Printf("query %q: %v", sql, err)
			return h.fail(c, newError(CodeServerError, "An internal server error occurred."))
		}
		itemType = "raw"
	default:
		limit := pageSize
		top, hasTop := q.Top()
		if hasTop {
			limit = min(limit, top-cont.Sent)
		}
		count, last, more := 0, "", false
		var encErr error
		if limit > 0 {
			each(string(q.From()), cont.Cursor, func(cur string, doc map[string]any) bool {
				if !q.Match(doc) {
					return true
				}
				if count == limit {
					more = true
					return false
				}
				b, err := json.Marshal(q.Project(doc))
				if err != nil {
					encErr = err
					return false
				}
				if count > 0 {
					buf.WriteByte(',')
				}
				buf.Write(b)
				count++
				last = cur
				return true
			})
		}
		if encErr != nil {
			h.log.Printf("query %q: %v", sql, encErr)
			return h.fail(c, newError(CodeServerError, "An internal server error occurred."))
		}
		if hasTop && cont.Sent+count >= top {
			more = false
		}
		if more {
			next = encodeContinuation(continuation{Cursor: last, Sent: cont.Sent + count, Query: hash})
		}
	}
	buf.WriteByte(']')

	extra := http.Header{"X-Ms-Item-Type": {itemType}}
	if next != "" {
		extra["X-Ms-Continuation"] = []string{next}
	}
	return writeBody(c, buf.Bytes(), extra)
}
