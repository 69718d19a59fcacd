package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	sigsjson "sigs.k8s.io/json"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// MaxBodyBytes is the largest request body Decode reads (1 MiB); a larger one is 413.
const MaxBodyBytes = 1 << 20

// MaxDepth is how deep Decode lets a request body nest arrays and objects; a deeper one is
// 400. No body of the contract goes past three levels (an order's lines); the bound keeps
// the walk that names a field in an error (walkJSON), which costs each value its depth,
// small: under encoding/json's own bound, 10,000 levels, a body of 16 KB cost 1.4 GB.
const MaxDepth = 32

const internalErrorMessage = "Internal server error"

// ErrorBody is the contract's error answer: {"error": "...", "details": [...]}.
type ErrorBody struct {
	Error   string `json:"error"`
	Details []any  `json:"details,omitempty"`
}

// Respond writes v as JSON with status. A nil v, or status 204, writes no body.
func Respond(w http.ResponseWriter, status int, v any) {
	if v == nil || status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The status is sent: an encoding error here can only be a client gone away.
	_ = json.NewEncoder(w).Encode(v)
}

// RespondError is the one place where an error becomes an HTTP answer. An
// *apperr.Error gets its kind's status with its message and details (its cause, if any, is
// logged with the request's id and not shown); anything else is
// logged with the request's id and answered 500 {"error": "Internal server error"}, so
// no driver message or stack ever reaches a client; a database that does not answer
// (mongodb.Unreachable) is 503 {"error": "database unavailable"}. An error that is the end of
// the request's context is 499 when its client abandoned it, logged at INFO, and 503 when the
// server's shutdown ran out of time (ErrCutAtShutdown), logged at WARN: neither answer is read.
func RespondError(w http.ResponseWriter, r *http.Request, err error) {
	if mongodb.Unreachable(err) && !errors.As(err, new(*apperr.Error)) && r.Context().Err() == nil {
		// The database does not answer: nothing is wrong with the request, which may
		// succeed once it is back. A 503 says so; a 500 would say the service is broken.
		err = apperr.Unavailable("database unavailable").Because(err)
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		if ae.Cause != nil {
			Logger(r.Context()).LogAttrs(r.Context(), slog.LevelWarn, "request failed",
				slog.String("method", r.Method), slog.String("route", Route(r.Context())),
				slog.String("error", ae.Error()), slog.String("cause", ae.Cause.Error()))
		}
		Respond(w, StatusOf(ae), ErrorBody{Error: ae.Error(), Details: ae.Details})
		return
	}
	if gone := r.Context().Err(); gone != nil && errors.Is(err, gone) {
		if errors.Is(context.Cause(r.Context()), ErrCutAtShutdown) {
			// The server's shutdown ran out of time and closes the connection: the client
			// did not go, the service gave up (and no answer reaches the client).
			Logger(r.Context()).LogAttrs(r.Context(), slog.LevelWarn, "request cut short by the shutdown",
				slog.String("method", r.Method), slog.String("route", Route(r.Context())))
			Respond(w, http.StatusServiceUnavailable, ErrorBody{Error: "Service shutting down"})
			return
		}
		// The client went away while the request waited: nothing failed here, and no one
		// reads the answer. nginx's 499 (client closed request) names it in metrics.
		Logger(r.Context()).LogAttrs(r.Context(), slog.LevelInfo, "request abandoned by the client",
			slog.String("method", r.Method), slog.String("route", Route(r.Context())))
		Respond(w, StatusClientClosedRequest, ErrorBody{Error: "Client closed request"})
		return
	}
	Logger(r.Context()).LogAttrs(r.Context(), slog.LevelError, "request failed",
		slog.String("method", r.Method), slog.String("route", Route(r.Context())),
		slog.String("error", err.Error()))
	Respond(w, http.StatusInternalServerError, ErrorBody{Error: internalErrorMessage})
}

// StatusClientClosedRequest is the status of a request its client abandoned (nginx's 499).
const StatusClientClosedRequest = 499

// StatusOf returns the HTTP status of a domain error's kind.
func StatusOf(e *apperr.Error) int {
	// Kind is one of apperr's sentinels; errors.Is keeps the mapping right should a
	// wrapped one ever get there.
	k := e.Kind
	switch {
	case errors.Is(k, apperr.ErrBadRequest), errors.Is(k, apperr.ErrValidation):
		return http.StatusBadRequest
	case errors.Is(k, apperr.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(k, apperr.ErrConflict):
		return http.StatusConflict
	case errors.Is(k, apperr.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(k, apperr.ErrMediaType):
		return http.StatusUnsupportedMediaType
	case errors.Is(k, apperr.ErrUnprocessable):
		return http.StatusUnprocessableEntity
	case errors.Is(k, apperr.ErrUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Decode reads the request body as exactly one JSON value into v, strictly: unknown
// fields, a wrong type, malformed JSON, bytes that are not UTF-8, an empty body or data
// after the value → a 400 apperr.Error saying what is wrong and where; a body over
// MaxBodyBytes → 413; a Content-Type other than JSON (see jsonMediaType) → 415, the body
// unread. Pass the error to RespondError.
//
// Names match the fields' JSON names exactly, and a name given twice is refused:
// encoding/json matches names regardless of case and keeps the last of two, so "Stock" or a
// second "stock" would set a field the client did not name as documented. The strict decoder
// is Kubernetes' (sigs.k8s.io/json), which decodes API objects the same way for the same
// reason.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	if err := jsonMediaType(r.Header); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return decodeError(nil, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return decodeError(nil, io.EOF)
	}
	if !utf8.Valid(body) {
		// encoding/json would put U+FFFD in place of each bad byte, and the service store
		// a name the client never sent.
		return apperr.BadRequest(fmt.Sprintf("request body is not valid UTF-8 (at byte %d)", invalidUTF8At(body)))
	}
	if at, deep := deeperThan(body, MaxDepth); deep {
		return apperr.BadRequest(fmt.Sprintf("request body nests arrays and objects more than %d deep (at byte %d)", MaxDepth, at))
	}
	strict, err := sigsjson.UnmarshalStrict(body, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if syntax, _ := sigsjson.SyntaxErrorOffset(err); syntax {
		// Said as encoding/json's decoder says it: where the JSON breaks, an unexpected
		// end, or data after a whole value ("{}{}" or "{} x": exactly one value is taken).
		var first json.RawMessage
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&first); err != nil {
			return decodeError(body, err)
		}
		return apperr.BadRequest("request body must hold a single JSON value")
	}
	if err != nil {
		return decodeError(body, err)
	}
	if at, ok := loneSurrogateAt(body); ok {
		// encoding/json decodes it as U+FFFD: a character the client never sent.
		return apperr.BadRequest(fmt.Sprintf("request body holds %s at byte %d, half of a UTF-16 surrogate pair: it encodes no character", body[at:at+6], at))
	}
	if len(strict) > 0 {
		// The first, as for every other error: the client mends one thing at a time.
		var fe sigsjson.FieldError
		if errors.As(strict[0], &fe) {
			msg := strings.TrimSuffix(fe.Error(), " "+strconv.Quote(fe.FieldPath()))
			return apperr.BadRequest(fe.Error(), apperr.FieldError{Field: fe.FieldPath(), Message: msg})
		}
		return apperr.BadRequest(strict[0].Error())
	}
	return refuseNull(body, reflect.TypeOf(v))
}

// deeperThan returns the offset of the first '[' or '{' of body, outside strings, that opens
// an array or object more than limit levels deep; deep is false when there is none. It reads
// the bytes only: body need not be well-formed JSON.
func deeperThan(body []byte, limit int) (at int, deep bool) {
	depth, inString := 0, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case inString && c == '\\':
			i++ // the escaped character, a quote maybe
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			if depth++; depth > limit {
				return i, true
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return 0, false
}

// loneSurrogateAt returns the offset of the first \u escape in a string of body, valid
// JSON, that encodes half of a UTF-16 surrogate pair without its other half; ok is false
// when there is none.
func loneSurrogateAt(body []byte) (at int, ok bool) {
	if !bytes.Contains(body, []byte(`\u`)) {
		return 0, false
	}
	// escapeAt returns the code unit of the \u escape at i, or -1.
	escapeAt := func(i int) int {
		if i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
			return -1
		}
		u, err := strconv.ParseUint(string(body[i+2:i+6]), 16, 16)
		if err != nil {
			return -1
		}
		return int(u)
	}
	inString := false
	for i := 0; i < len(body); i++ {
		switch {
		case !inString:
			inString = body[i] == '"'
		case body[i] == '"':
			inString = false
		case body[i] == '\\':
			u := escapeAt(i)
			switch {
			case u >= 0xD800 && u < 0xDC00:
				if low := escapeAt(i + 6); low >= 0xDC00 && low < 0xE000 {
					i += 11 // the pair
					continue
				}
				return i, true
			case u >= 0xDC00 && u < 0xE000:
				return i, true
			case u >= 0:
				i += 5 // the escape
			default:
				i++ // the escaped character
			}
		}
	}
	return 0, false
}

// invalidUTF8At returns the offset of the first byte of b that does not start a valid
// UTF-8 sequence, or len(b).
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// jsonMediaType refuses (415) a request whose Content-Type is not JSON: application/json
// or a structured +json type (application/merge-patch+json), with any parameters
// (charset=utf-8), in any case. A request without one is read as JSON, the only type the
// contract takes. The type is what the client says the body is: a form
// (curl -d sends application/x-www-form-urlencoded) or text that happens to parse as JSON
// was not meant as it.
func jsonMediaType(h http.Header) error {
	values := h.Values("Content-Type")
	if len(values) == 0 || len(values) == 1 && strings.TrimSpace(values[0]) == "" {
		return nil
	}
	if len(values) == 1 {
		if mt, _, err := mime.ParseMediaType(values[0]); err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			return nil
		}
	}
	return apperr.UnsupportedMediaType(fmt.Sprintf("Content-Type must be application/json, not %q", strings.Join(values, ", ")))
}

// refuseNull returns the 400 of the first null in body, decoded into a value of type t.
// No field of the contract takes null, and encoding/json would quietly skip it: a body
// null would change nothing and answer 200, a "stock": null would create a product with
// stock 0. It is refused as the wrong type it is, except where the field's own
// UnmarshalJSON decides (web.Optional refuses it already).
func refuseNull(body []byte, t reflect.Type) error {
	if !bytes.Contains(body, []byte("null")) {
		return nil
	}
	var err error
	walkJSON(body, func(v jsonValue) bool {
		if !v.null {
			return true
		}
		want, decides := typeAt(t, v.steps)
		switch {
		case decides:
			return true
		case want == nil: // a field the walk cannot follow into its Go type
			err = apperr.BadRequest(fmt.Sprintf("field %q must not be null", v.path()),
				apperr.FieldError{Field: v.path(), Message: "must not be null"})
		default:
			err = decodeError(body, &json.UnmarshalTypeError{Value: "null", Type: want, Field: v.dotted(), Offset: v.end})
		}
		return false
	})
	return err
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// typeAt returns the Go type that the value at steps of a JSON document decoded into a t
// goes to, or nil if it cannot say; decides tells that the value goes to a type with an
// UnmarshalJSON of its own (there or above it), which decides what null means.
func typeAt(t reflect.Type, steps []jsonStep) (_ reflect.Type, decides bool) {
	for i := 0; ; i++ {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if reflect.PointerTo(t).Implements(unmarshalerType) {
			return nil, true
		}
		if i == len(steps) {
			return t, false
		}
		switch s := steps[i]; {
		case s.inArray && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
			t = t.Elem()
		case !s.inArray && t.Kind() == reflect.Map:
			t = t.Elem()
		case !s.inArray && t.Kind() == reflect.Struct:
			f, ok := fieldNamed(t, s.key)
			if !ok {
				return nil, false
			}
			t = f.Type
		default:
			return nil, false
		}
	}
}

// fieldNamed returns the field of struct t that the JSON member name decodes into, as
// Decode matches them: exactly.
func fieldNamed(t reflect.Type, name string) (reflect.StructField, bool) {
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-":
			continue
		case f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct:
			continue // its fields are promoted: VisibleFields lists them too
		case tag == "":
			tag = f.Name
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func decodeError(body []byte, err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		mbe    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return apperr.TooLarge(fmt.Sprintf("request body must not be larger than %d bytes", mbe.Limit))
	case errors.Is(err, io.EOF):
		return apperr.BadRequest("request body must not be empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.BadRequest("request body is malformed JSON (unexpected end)")
	case errors.As(err, &syntax):
		return apperr.BadRequest(fmt.Sprintf("request body is malformed JSON at byte %d", syntax.Offset))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return apperr.BadRequest(fmt.Sprintf("request body must be a JSON %s", jsonType(typ)))
		}
		field := indexedPath(body, typ)
		return apperr.BadRequest(fmt.Sprintf("field %q must be a JSON %s", field, jsonType(typ)),
			apperr.FieldError{Field: field, Message: "must be a JSON " + jsonType(typ)})
	default:
		return apperr.BadRequest("request body is not valid JSON")
	}
}

// jsonType names the JSON type a Go type expects.
func jsonType(e *json.UnmarshalTypeError) string {
	switch e.Type.Kind().String() {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	default:
		return e.Type.String()
	}
}

// indexedPath names, array indices included (items[1].quantity), the value a type error is
// about. encoding/json gives its Field without indices (items.quantity), which does not say
// which line of an order is wrong; its Offset, the end of the value (or a byte inside it, for
// an array or object), tells the lines apart. The deepest value of the same dotted name around
// the Offset is the one. When none is found (the error's Field names something the walk does
// not see), the Field is returned as it is.
func indexedPath(body []byte, e *json.UnmarshalTypeError) string {
	composite := e.Value == "array" || e.Value == "object"
	best, bestDepth := e.Field, -1
	walkJSON(body, func(v jsonValue) bool {
		// Only the values around the Offset are named: as many as the body is deep.
		if v.composite == composite && v.start < e.Offset && e.Offset <= v.end && v.depth > bestDepth && v.dotted() == e.Field {
			best, bestDepth = v.path(), v.depth
		}
		return true
	})
	return best
}

// jsonValue is one value of a JSON document as walkJSON meets it.
type jsonValue struct {
	// steps is its name, one step per member or element; valid only while visit runs.
	steps      []jsonStep
	start, end int64 // its bytes; start may be earlier, where the token before it ended
	depth      int   // how many arrays and objects hold it
	composite  bool  // an array or object, met once it closes
	null       bool
}

// path is the value's name with array indices: lines[1].quantity.
func (v jsonValue) path() string {
	var b strings.Builder
	for _, s := range v.steps {
		switch {
		case s.inArray:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		case b.Len() > 0:
			b.WriteString("." + s.key)
		default:
			b.WriteString(s.key)
		}
	}
	return b.String()
}

// dotted is the value's name without array indices, as encoding/json names a field:
// lines.quantity.
func (v jsonValue) dotted() string {
	var b strings.Builder
	for _, s := range v.steps {
		if s.inArray {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

// jsonStep is a step into an object's member (key) or an array's element (index).
type jsonStep struct {
	key     string
	index   int
	inArray bool
}

// walkJSON calls visit with every value of body, a scalar where it ends and an array or
// object where it closes, until visit returns false or body ends or stops being JSON. A
// value's name is made only when visit asks for it (jsonValue.path), so that the walk costs
// the body's length, not its length times its names' (a 1 MiB body of long keys nested
// deep, with a value in the wrong type at the end, would otherwise cost gigabytes).
func walkJSON(body []byte, visit func(jsonValue) bool) {
	type frame struct {
		start       int64 // where the composite began
		array       bool
		index       int    // an array's next element
		key         string // an object's next member
		awaitingKey bool
	}
	var stack []frame
	var steps []jsonStep // reused: the name of the value visited
	// stepsTo returns the steps to the current member or element of the innermost n frames.
	stepsTo := func(n int) []jsonStep {
		steps = steps[:0]
		for _, f := range stack[:n] {
			steps = append(steps, jsonStep{key: f.key, index: f.index, inArray: f.array})
		}
		return steps
	}
	advance := func() { // the value of the innermost composite's current member or element is read
		if n := len(stack); n > 0 {
			if stack[n-1].array {
				stack[n-1].index++
			} else {
				stack[n-1].awaitingKey = true
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var prev int64
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		end := dec.InputOffset()
		delim, isDelim := tok.(json.Delim)
		n := len(stack)
		switch {
		case isDelim && (delim == '}' || delim == ']'):
			start := stack[n-1].start
			stack = stack[:n-1]
			// The frames around it still point at it: they move on after the visit.
			if !visit(jsonValue{steps: stepsTo(n - 1), start: start, end: end, depth: n - 1, composite: true}) {
				return
			}
			advance()
		case n > 0 && stack[n-1].awaitingKey:
			stack[n-1].key, _ = tok.(string)
			stack[n-1].awaitingKey = false
		case isDelim:
			stack = append(stack, frame{start: prev, array: delim == '[', awaitingKey: delim == '{'})
		default:
			if !visit(jsonValue{steps: stepsTo(n), start: prev, end: end, depth: n, null: tok == nil}) {
				return
			}
			advance()
		}
		prev = end
	}
}
