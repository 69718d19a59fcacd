package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

type item struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags"`
	Inner struct {
		OK bool `json:"ok"`
	} `json:"inner"`
	Lines  []line         `json:"lines"`
	Grid   [][]int        `json:"grid"`
	Labels map[string]int `json:"labels"`
}

type line struct {
	Quantity int      `json:"quantity"`
	Options  []string `json:"options"`
	Inner    struct {
		OK bool `json:"ok"`
	} `json:"inner"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int    // 0: decoded
		errMsg string // substring of the error message
	}{
		{"valid", `{"name":"a","count":2,"tags":["x"],"inner":{"ok":true}}`, 0, ""},
		{"valid with spaces after", "{\"name\":\"a\"}\n  \n", 0, ""},
		{"empty", ``, 400, "must not be empty"},
		{"malformed", `{"name":}`, 400, "malformed JSON at byte"},
		{"truncated", `{"name":"a"`, 400, "malformed JSON"},
		{"unknown field", `{"name":"a","admin":true}`, 400, `unknown field "admin"`},
		// Names match exactly: encoding/json alone would take these for name and count.
		{"name in another case", `{"NAME":"a"}`, 400, `unknown field "NAME"`},
		{"second name in another case", `{"name":"a","count":1,"Count":1000}`, 400, `unknown field "Count"`},
		{"nested name in another case", `{"name":"a","inner":{"OK":true}}`, 400, `unknown field "inner.OK"`},
		{"name given twice", `{"name":"a","count":1,"count":1000}`, 400, `duplicate field "count"`},
		{"wrong type", `{"count":"two"}`, 400, `field "count" must be a JSON integer`},
		{"wrong type in array", `{"tags":["a",1]}`, 400, `field "tags[1]" must be a JSON string`},
		{"wrong nested type", `{"inner":{"ok":"yes"}}`, 400, `field "inner.ok" must be a JSON boolean`},
		// The error names the line: encoding/json alone says "lines.quantity".
		{"wrong type in the second line", `{"lines":[{"quantity":1},{"quantity":"2"}]}`, 400, `field "lines[1].quantity" must be a JSON integer`},
		{"wrong type in a line, spaced", "{ \"lines\" : [ {\"quantity\": 1} ,\n {\"quantity\" : 2, \"options\": [\"a\", \"b\", false]} ] }", 400, `field "lines[1].options[2]" must be a JSON string`},
		{"wrong nested type in a line", `{"lines":[{"inner":{"ok":true}},{"inner":{"ok":true}},{"inner":{"ok":1}}]}`, 400, `field "lines[2].inner.ok" must be a JSON boolean`},
		{"array for an integer in a line", `{"lines":[{"quantity":3},{"quantity":[1,2]}]}`, 400, `field "lines[1].quantity" must be a JSON integer`},
		{"object for a line", `{"lines":[{"quantity":3},{"quantity":1},7]}`, 400, `field "lines[2]" must be a JSON object`},
		{"string for an array", `{"lines":"many"}`, 400, `field "lines" must be a JSON array`},
		{"wrong type in a grid", `{"grid":[[1,2],[3,"4"]]}`, 400, `field "grid[1][1]" must be a JSON integer`},
		{"same value earlier, right type", `{"lines":[{"quantity":2},{"quantity":2.5}]}`, 400, `field "lines[1].quantity" must be a JSON integer`},
		{"wrong type in a map", `{"labels":{"a":1,"b":"x"}}`, 400, `must be a JSON integer`},
		{"not an object", `[1,2]`, 400, "must be a JSON object"},
		// null is the wrong type wherever it is: encoding/json alone would skip it.
		{"valid with null in a string", `{"name":"a","tags":["null"]}`, 0, ""},
		{"null", `null`, 400, "request body must be a JSON object"},
		{"null for an integer", `{"name":"a","count":null}`, 400, `field "count" must be a JSON integer`},
		{"null for an array", `{"name":"a","tags":null}`, 400, `field "tags" must be a JSON array`},
		{"null in an array", `{"tags":["a",null]}`, 400, `field "tags[1]" must be a JSON string`},
		{"null for an object", `{"inner":null}`, 400, `field "inner" must be a JSON object`},
		{"null in the second line", `{"lines":[{"quantity":1},{"quantity":null}]}`, 400, `field "lines[1].quantity" must be a JSON integer`},
		{"null for a line", `{"lines":[{"quantity":1},null]}`, 400, `field "lines[1]" must be a JSON object`},
		{"null in a grid", `{"grid":[[1],[2,null]]}`, 400, `field "grid[1][1]" must be a JSON integer`},
		{"null in a map", `{"labels":{"a":1,"b":null}}`, 400, `field "labels.b" must be a JSON integer`},
		{"two values", `{"name":"a"}{"name":"b"}`, 400, "single JSON value"},
		{"trailing garbage", `{"name":"a"} x`, 400, "single JSON value"},
		// encoding/json alone would decode these as "a\uFFFD".
		{"invalid UTF-8 in a string", "{\"name\":\"a\xff\"}", 400, "request body is not valid UTF-8 (at byte 10)"},
		{"a truncated UTF-8 sequence", "{\"name\":\"a\xc3\"}", 400, "not valid UTF-8 (at byte 10)"},
		{"a UTF-16 surrogate in UTF-8", "{\"name\":\"a\xed\xa0\x80\"}", 400, "not valid UTF-8 (at byte 10)"},
		{"invalid UTF-8 outside a string", "{\"name\":\"a\"}\xff", 400, "not valid UTF-8 (at byte 12)"},
		{"valid UTF-8 and escapes", `{"name":"a","tags":["é","\u00e9","\ud83d\ude00","😀"]}`, 0, ""},
		// encoding/json would decode each as U+FFFD.
		{"a lone high surrogate escape", `{"name":"a\ud800"}`, 400, `holds \ud800 at byte 10, half of a UTF-16 surrogate pair`},
		{"a lone low surrogate escape", `{"name":"\uDC00b"}`, 400, `holds \uDC00 at byte 9`},
		{"a high surrogate before another high", `{"name":"\ud83d\ud83d\ude00"}`, 400, `holds \ud83d at byte 9`},
		{"a high surrogate before a plain escape", `{"name":"\ud83d\n"}`, 400, `holds \ud83d at byte 9`},
		{"escaped backslashes, not escapes", `{"name":"a","tags":["\\ud800 and \\\\udc00","\"\\ud800"]}`, 0, ""},
		{"too large", `{"name":"` + strings.Repeat("a", web.MaxBodyBytes) + `"}`, 413, "must not be larger than 1048576 bytes"},
		// The body's object is the first level: name's value nests MaxDepth-1 arrays more.
		{"nested as deep as may be", `{"name":` + nested(web.MaxDepth-1) + `}`, 400, `field "name" must be a JSON string`},
		{"nested deeper", `{"name":` + nested(web.MaxDepth) + `}`, 400, "request body nests arrays and objects more than 32 deep (at byte 39)"},
		{"nested deeper in an unknown field", `{"x":[{"y":` + nested(web.MaxDepth) + `}]}`, 400, "more than 32 deep"},
		{"brackets in strings are no nesting", `{"name":"a","tags":["` + strings.Repeat("[{", 40) + `","\"` + strings.Repeat("[", 40) + `"]}`, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got item
			h := decodeInto(&got)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(tt.body)))
			if tt.status == 0 {
				if rec.Code != 200 || got.Name != "a" {
					t.Fatalf("decode failed: %d %s", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.status, rec.Body)
			}
			if msg := errorOf(t, rec); !strings.Contains(msg, tt.errMsg) {
				t.Errorf("error = %q, want it to contain %q", msg, tt.errMsg)
			}
		})
	}
}

// nested returns depth arrays, one in another.
func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// A deeply nested body costs little to refuse: naming the field of a type error walks the
// body at a cost that grows with the square of its depth, which was bounded only by
// encoding/json's 10,000 levels (8 KB of brackets cost 368 MiB of allocations).
func TestDecodeDeepBodyCostsLittle(t *testing.T) {
	body := `{"name":` + nested(4000) + `}`
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rec := httptest.NewRecorder()
	decodeInto(new(item)).ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(body)))
	runtime.ReadMemStats(&after)
	if rec.Code != 400 {
		t.Fatalf("status = %d, want 400 (%s)", rec.Code, rec.Body)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 4<<20 {
		t.Errorf("refusing an %d-byte body allocated %d MiB", len(body), allocated>>20)
	}
}

// So does a body as deep as may be with long names, many values deep in it, and a value of
// the wrong type: the walk that names the field must not build every value's name (30 KB
// each here, for 100,000 values).
func TestDecodeWideBodyCostsLittle(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"name":1,"x":`)
	for i := range web.MaxDepth - 2 {
		b.WriteString(`{"` + strings.Repeat(string(rune('a'+i%26)), 1000) + `":`)
	}
	b.WriteString("[0" + strings.Repeat(",0", 100_000) + "]")
	b.WriteString(strings.Repeat("}", web.MaxDepth-2) + "}")
	body := b.String()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rec := httptest.NewRecorder()
	decodeInto(new(item)).ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(body)))
	runtime.ReadMemStats(&after)
	if rec.Code != 400 || !strings.Contains(errorOf(t, rec), `field "name" must be a JSON string`) {
		t.Fatalf("status = %d (%s), want 400 naming name", rec.Code, rec.Body)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 64<<20 {
		t.Errorf("refusing a %d-byte body allocated %d MiB", len(body), allocated>>20)
	}
}

// Decode reads a body whose Content-Type says JSON, or says nothing; any other is 415
// with the JSON error, whatever the body holds. curl -d sends a JSON body as a form
// (application/x-www-form-urlencoded): it is refused, not read as what it is not.
func TestDecodeContentType(t *testing.T) {
	const body = `{"name":"a"}`
	tests := []struct {
		contentType []string // the request's Content-Type values
		status      int
	}{
		{nil, 200},
		{[]string{""}, 200},
		{[]string{"application/json"}, 200},
		{[]string{"application/json; charset=utf-8"}, 200},
		{[]string{"Application/JSON;Charset=UTF-8"}, 200},
		{[]string{"application/merge-patch+json"}, 200},
		{[]string{"application/problem+JSON; charset=utf-8"}, 200},
		{[]string{"text/plain"}, 415},
		{[]string{"text/plain; charset=utf-8"}, 415},
		{[]string{"application/xml"}, 415},
		{[]string{"application/x-www-form-urlencoded"}, 415},
		{[]string{"multipart/form-data; boundary=x"}, 415},
		{[]string{"application/jsonx"}, 415},
		{[]string{"application/json+xml"}, 415},
		{[]string{"json"}, 415},
		{[]string{"application/json; charset"}, 415}, // a parameter that does not parse
		{[]string{"application/json", "text/plain"}, 415},
		{[]string{"application/json", "application/json"}, 415},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.contentType, ","), func(t *testing.T) {
			var got item
			h := decodeInto(&got)
			req := httptest.NewRequest("POST", "/", strings.NewReader(body))
			for _, ct := range tt.contentType {
				req.Header.Add("Content-Type", ct)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status = %d %s, want %d", rec.Code, rec.Body, tt.status)
			}
			if tt.status == 415 {
				if msg := errorOf(t, rec); !strings.HasPrefix(msg, "Content-Type must be application/json, not ") {
					t.Errorf("error = %q", msg)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("answer's Content-Type = %q, want application/json", ct)
				}
			} else if got.Name != "a" {
				t.Errorf("decoded %+v", got)
			}
		})
	}
}

func TestRespondErrorToAClientGone(t *testing.T) {
	var logs strings.Builder
	mux := web.NewMux(logging.NewTo(&logs, "test", slog.LevelInfo), nil)
	mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {
		web.RespondError(w, r, fmt.Errorf("wait for the key: %w", r.Context().Err()))
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client has gone
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/x", nil))
	if rec.Code != web.StatusClientClosedRequest {
		t.Errorf("status = %d, want %d", rec.Code, web.StatusClientClosedRequest)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), "request abandoned by the client") {
		t.Errorf("logs: %s", logs.String())
	}
}

func TestRespondError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		body   string
		logged bool
	}{
		{"not found", apperr.NotFound("User not found"), 404, `{"error":"User not found"}`, false},
		{"wrapped not found", fmt.Errorf("get: %w", apperr.NotFound("User not found")), 404, `{"error":"User not found"}`, false},
		{"validation", apperr.Validation(apperr.FieldError{Field: "name", Message: "too short"}), 400,
			`{"error":"validation failed","details":[{"field":"name","message":"too short"}]}`, false},
		{"conflict with details", apperr.Conflict("insufficient stock", map[string]any{"productId": "p1", "requested": 2, "available": 1}), 409,
			`{"error":"insufficient stock","details":[{"available":1,"productId":"p1","requested":2}]}`, false},
		{"too large", apperr.TooLarge("too big"), 413, `{"error":"too big"}`, false},
		{"unsupported media type", apperr.UnsupportedMediaType("not JSON"), 415, `{"error":"not JSON"}`, false},
		{"unprocessable", apperr.Unprocessable("unknown product"), 422, `{"error":"unknown product"}`, false},
		{"unavailable", apperr.Unavailable("product service unavailable"), 503, `{"error":"product service unavailable"}`, false},
		{"bad request", apperr.BadRequest("bad"), 400, `{"error":"bad"}`, false},
		{"driver error never leaks", errors.New("connection(127.0.0.1:27017) incomplete read"), 500, `{"error":"Internal server error"}`, true},
		{"database that does not answer", fmt.Errorf("get user: %w", mongo.CommandError{Labels: []string{"NetworkError"}, Message: "connection(127.0.0.1:27017) incomplete read"}), 503,
			`{"error":"database unavailable"}`, true},
		{"database operation out of time", fmt.Errorf("list products: %w: incomplete read", context.DeadlineExceeded), 503, `{"error":"database unavailable"}`, true},
		{"a cause is logged, not shown", apperr.Unavailable("product service unavailable").Because(errors.New("dial tcp: incomplete read")), 503,
			`{"error":"product service unavailable"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs strings.Builder
			mux := web.NewMux(logging.NewTo(&logs, "test", slog.LevelInfo), nil)
			mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) { web.RespondError(w, r, tt.err) })
			rec := serve(mux, "GET", "/x")
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			var got, want any
			_ = json.Unmarshal(rec.Body.Bytes(), &got)
			_ = json.Unmarshal([]byte(tt.body), &want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("body = %s, want %s", rec.Body, tt.body)
			}
			if logged := strings.Contains(logs.String(), "request failed"); logged != tt.logged {
				t.Errorf("error logged = %v, want %v: %s", logged, tt.logged, logs.String())
			}
			if tt.logged && !strings.Contains(logs.String(), "incomplete read") {
				t.Errorf("the hidden error is not in the log: %s", logs.String())
			}
		})
	}
}

// A field whose type has an UnmarshalJSON of its own decides what null means: Decode
// leaves null to it.
func TestDecodeLeavesNullToTheFieldsUnmarshalJSON(t *testing.T) {
	var got struct {
		Raw   json.RawMessage        `json:"raw"`
		Stock web.Optional[int]      `json:"stock"`
		Inner []map[string]time.Time `json:"inner"`
	}
	tests := []struct {
		body, errMsg string
	}{
		{`{"raw":null,"inner":[{"at":null}]}`, ""},
		{`{"stock":null}`, `field "stock" must be a JSON integer`}, // Optional refuses it
	}
	for _, tt := range tests {
		req := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
		err := web.Decode(httptest.NewRecorder(), req, &got)
		if tt.errMsg == "" && err != nil || tt.errMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.errMsg)) {
			t.Errorf("Decode(%s) = %v, want %q", tt.body, err, tt.errMsg)
		}
	}
}

// decodeInto is a handler that decodes the request body into got and answers it back, or
// the refusal.
func decodeInto(got *item) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := web.Decode(w, r, got); err != nil {
			web.RespondError(w, r, err)
			return
		}
		web.Respond(w, http.StatusOK, *got)
	})
}
