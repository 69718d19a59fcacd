package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	sigsjson "sigs.k8s.io/json"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
)

// MaxBodyBytes is the largest request body Decode reads (1 MiB); a larger one is 413.
const MaxBodyBytes = 1 << 20

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
// no driver message or stack ever reaches a client.
func RespondError(w http.ResponseWriter, r *http.Request, err error) {
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
	case errors.Is(k, apperr.ErrUnprocessable):
		return http.StatusUnprocessableEntity
	case errors.Is(k, apperr.ErrUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Decode reads the request body as exactly one JSON value into v, strictly: unknown
// fields, a wrong type, malformed JSON, an empty body or data after the value → a 400
// apperr.Error saying what is wrong and where; a body over MaxBodyBytes → 413. Pass the
// error to RespondError.
//
// Names match the fields' JSON names exactly, and a name given twice is refused:
// encoding/json matches names regardless of case and keeps the last of two, so "Stock" or a
// second "stock" would set a field the client did not name as documented. The strict decoder
// is Kubernetes' (sigs.k8s.io/json), which decodes API objects the same way for the same
// reason.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return decodeError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return decodeError(io.EOF)
	}
	strict, err := sigsjson.UnmarshalStrict(body, v, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if syntax, _ := sigsjson.SyntaxErrorOffset(err); syntax {
		// Said as encoding/json's decoder says it: where the JSON breaks, an unexpected
		// end, or data after a whole value ("{}{}" or "{} x": exactly one value is taken).
		var first json.RawMessage
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&first); err != nil {
			return decodeError(err)
		}
		return apperr.BadRequest("request body must hold a single JSON value")
	}
	if err != nil {
		return decodeError(err)
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
	return nil
}

func decodeError(err error) error {
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
		return apperr.BadRequest(fmt.Sprintf("field %q must be a JSON %s", typ.Field, jsonType(typ)),
			apperr.FieldError{Field: typ.Field, Message: "must be a JSON " + jsonType(typ)})
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
