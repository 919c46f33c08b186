package hubsim

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

// handleQuery serves POST /devices/query: body {"query":"<SQL>"}, a bare
// JSON array of items, paged with x-ms-max-item-count and x-ms-continuation
// (absent on the last page), item kind in x-ms-item-type.
func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request, reqID string) int {
	if herr := checkAPIVersion(r); herr != nil {
		return s.fail(w, reqID, herr)
	}
	if herr := s.auth.authorize(r, accessRead, resource{}); herr != nil {
		return s.fail(w, reqID, herr)
	}
	body, err := readBody(r)
	if err != nil {
		return s.fail(w, reqID, bodyError(err))
	}
	var spec struct {
		Query *string `json:"query"`
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return s.fail(w, reqID, newError(codeIotHubFormatError, `The request body is empty; expected {"query":"SELECT ..."}.`))
	}
	if err := json.Unmarshal(body, &spec); err != nil {
		return s.fail(w, reqID, newError(codeIotHubFormatError, "The request body is not a valid QuerySpecification JSON object: "+jsonErrorText(err)))
	}
	if spec.Query == nil || strings.TrimSpace(*spec.Query) == "" {
		return s.fail(w, reqID, newError(codeArgumentInvalid, "The query is required."))
	}
	sql := *spec.Query
	q, err := query.Parse(sql)
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return s.fail(w, reqID, newError(codeArgumentInvalid, capitalize(qe.Error())))
		}
		return s.fail(w, reqID, newError(codeArgumentInvalid, capitalize(err.Error())))
	}

	pageSize := defaultPageSize
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return s.fail(w, reqID, newError(codeArgumentInvalid, "The x-ms-max-item-count header must be a whole number of at least 1."))
		}
		pageSize = min(n, maxPageSize)
	}
	hash := queryHash(sql)
	cont := continuation{Query: hash}
	if v := r.Header.Get("x-ms-continuation"); v != "" {
		c, ok := decodeContinuation(v)
		if !ok || c.Query != hash {
			return s.fail(w, reqID, newError(codeArgumentInvalid, "The x-ms-continuation token is not valid for this query."))
		}
		cont = c
	}

	if st, ok := s.throttleWait(r, reqID, w, s.limiter.AllowQuery, "queries"); !ok {
		return st
	}

	itemType := "raw"
	if selectStar.MatchString(sql) {
		itemType = "twin"
	}
	each := s.reg.Each
	if q.From() == query.DevicesJobs {
		each = s.eachDeviceJob // device-job records of the job engine
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
			s.log.Printf("query %q: %v", sql, err)
			return s.fail(w, reqID, newError(codeServerError, "An internal server error occurred."))
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
			s.log.Printf("query %q: %v", sql, encErr)
			return s.fail(w, reqID, newError(codeServerError, "An internal server error occurred."))
		}
		if hasTop && cont.Sent+count >= top {
			more = false
		}
		if more {
			next = encodeContinuation(continuation{Cursor: last, Sent: cont.Sent + count, Query: hash})
		}
	}
	buf.WriteByte(']')

	h := w.Header()
	h["Content-Type"] = contentTypeJSONValue
	h["X-Ms-Request-Id"] = []string{reqID}
	h["X-Ms-Item-Type"] = []string{itemType}
	if next != "" {
		h["X-Ms-Continuation"] = []string{next}
	}
	h["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
	return http.StatusOK
}
