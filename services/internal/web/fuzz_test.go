package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

type fuzzItem struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

type fuzzPlace struct {
	UserID string     `json:"userId"`
	Items  []fuzzItem `json:"items"`
}

type fuzzPatch struct {
	Name       Optional[string] `json:"name"`
	PriceCents Optional[int64]  `json:"priceCents"`
	Tags       []string         `json:"tags"`
	Meta       map[string]int   `json:"meta"`
	Flag       *bool            `json:"flag"`
	Ratio      float64          `json:"ratio"`
}

// clientStatus is the status RespondError gives err; it must be a client's (4xx).
func clientStatus(t *testing.T, err error) int {
	t.Helper()
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is no apperr.Error: it would be a 500", err, err)
	}
	r := httptest.NewRequest(http.MethodPost, "/x", nil)
	w := httptest.NewRecorder()
	RespondError(w, r, err)
	if w.Code < 400 || w.Code >= 500 {
		t.Fatalf("error %v answered %d", err, w.Code)
	}
	if !json.Valid(w.Body.Bytes()) {
		t.Fatalf("error %v answered a body that is not JSON: %q", err, w.Body.Bytes())
	}
	return w.Code
}

func decodeInto[T any](t *testing.T, body, contentType string, roundTrip, std bool) {
	r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	var v T
	err := Decode(w, r, &v)
	if err != nil {
		clientStatus(t, err)
		return
	}
	// Accepted: encoding/json reads the same value (sigs.k8s.io/json reads a number into an
	// any as int64 where it can, by design), and it round-trips.
	if !std {
		goto roundTrip
	}
	{
		var std T
		if err := json.Unmarshal([]byte(body), &std); err != nil {
			t.Fatalf("Decode accepted %q, encoding/json refuses it: %v", body, err)
		}
		if !reflect.DeepEqual(v, std) {
			t.Fatalf("Decode read %q as %+v, encoding/json as %+v", body, v, std)
		}
	}
roundTrip:
	if !roundTrip {
		return
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %+v: %v", v, err)
	}
	var back T
	r = httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(string(again)))
	if err := Decode(httptest.NewRecorder(), r, &back); err != nil {
		if strings.Contains(string(again), "null") {
			return // a nil slice or map marshals as null, which Decode refuses by design
		}
		t.Fatalf("Decode accepted %q but refuses its own re-encoding %s: %v", body, again, err)
	}
	if !reflect.DeepEqual(back, v) {
		t.Fatalf("Decode read %q as %+v, its re-encoding %s as %+v", body, v, again, back)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"userId":"u1","items":[{"productId":"p1","quantity":2}]}`,
		`{"name":"x","priceCents":5,"tags":["a"],"meta":{"k":1},"flag":true,"ratio":1.5}`,
		`{"items":[{"quantity":1},{"quantity":"2"}]}`,
		`{"name":null}`, `{"userId":"\ud800"}`, `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`{"UserId":"x"}`, `{"userId":"a","userId":"b"}`, `{} {}`, "\xff", `{"meta":{"a":null}}`,
		`{"items":[{"productId":1}]}`, `{"ratio":1e400}`, `{"priceCents":9223372036854775808}`,
	} {
		f.Add(s, "")
		f.Add(s, "application/json; charset=utf-8")
	}
	f.Fuzz(func(t *testing.T, body, contentType string) {
		decodeInto[fuzzPlace](t, body, contentType, true, true)
		decodeInto[fuzzPatch](t, body, contentType, false, true)
		decodeInto[map[string]any](t, body, contentType, true, false)
		decodeInto[[]fuzzItem](t, body, contentType, true, true)
	})
}

func FuzzQuery(f *testing.F) {
	for _, s := range []string{"limit=5&after=6650f1aa0000000000000000", "limit=1&limit=2", "a=%zz", "x;y", "after=%", "userId=&status", "limit=%2B5", "=", "&&&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.URL.RawQuery = raw
		q, err := Query(r, "limit", "after", "userId")
		if err != nil {
			clientStatus(t, err)
			return
		}
		if err := Filters(q, "userId"); err != nil {
			clientStatus(t, err)
		}
		if _, err := mongodb.ParsePageRequest(q); err != nil {
			clientStatus(t, err)
		}
		back, err := url.ParseQuery(q.Encode())
		if err != nil || !reflect.DeepEqual(back, q) && len(q) > 0 {
			t.Fatalf("query %q read as %v; its encoding %q reads as %v, %v", raw, q, q.Encode(), back, err)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add("6650f1aa0000000000000000")
	f.Add("6650F1AA0000000000000000")
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := mongodb.ParseID(s)
		if ok && id.Hex() != s {
			t.Fatalf("ParseID(%q) = %s", s, id.Hex())
		}
	})
}
