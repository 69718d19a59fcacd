// Package apperr holds the domain errors every service returns. A store or a domain
// package says what went wrong (not found, conflict, invalid input, ...) with one of
// these; only web.RespondError turns them into an HTTP status and the contract's JSON
// body, so the mapping lives in one place.
package apperr

import (
	"errors"
	"strings"
)

// Sentinels to test an error's kind with errors.Is, e.g. errors.Is(err, apperr.ErrNotFound).
var (
	ErrBadRequest    = errors.New("bad request")
	ErrValidation    = errors.New("validation failed")
	ErrNotFound      = errors.New("not found")
	ErrConflict      = errors.New("conflict")
	ErrTooLarge      = errors.New("request body too large")
	ErrMediaType     = errors.New("unsupported media type")
	ErrUnprocessable = errors.New("unprocessable")
	ErrUnavailable   = errors.New("service unavailable")
)

// Error is a domain error: a kind (one of the sentinels above), the message a client
// reads in "error" and optional details, each encoded as one element of "details".
type Error struct {
	// Kind is one of the Err* sentinels; errors.Is(e, Kind) is true.
	Kind error
	// Message is shown to the client as is, so it must never carry a driver message.
	Message string
	// Details are encoded as the "details" array (FieldError, or any JSON-encodable value).
	Details []any
	// Cause is what led to the error (a peer's transport error, say): logged with the
	// request, never shown to the client.
	Cause error
}

// Because sets the error's cause and returns the error.
func (e *Error) Because(cause error) *Error {
	e.Cause = cause
	return e
}

// Unwrap returns the cause, so errors.Is and errors.As see through to it.
func (e *Error) Unwrap() error { return e.Cause }

// Error returns the message, with the kind when the message does not already say it.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Kind.Error()
	}
	return e.Message
}

// Is reports whether target is the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// FieldError names one invalid input field and why it is invalid.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// BadRequest is a request the server cannot read: malformed JSON, a wrong type, a bad
// query parameter (400).
func BadRequest(message string, details ...any) *Error {
	return &Error{Kind: ErrBadRequest, Message: message, Details: details}
}

// Validation is a well-formed request whose fields break the rules (400 "validation failed").
func Validation(fields ...FieldError) *Error {
	details := make([]any, len(fields))
	for i, f := range fields {
		details[i] = f
	}
	return &Error{Kind: ErrValidation, Message: "validation failed", Details: details}
}

// NotFound is an unknown or malformed id (404), e.g. NotFound("User not found").
func NotFound(message string) *Error {
	return &Error{Kind: ErrNotFound, Message: message}
}

// Conflict is a request that clashes with the stored state (409): a duplicate email,
// short stock.
func Conflict(message string, details ...any) *Error {
	return &Error{Kind: ErrConflict, Message: message, Details: details}
}

// TooLarge is a request body over the limit (413).
func TooLarge(message string) *Error {
	return &Error{Kind: ErrTooLarge, Message: message}
}

// UnsupportedMediaType is a request body of a media type the operation does not read (415).
func UnsupportedMediaType(message string) *Error {
	return &Error{Kind: ErrMediaType, Message: message}
}

// Unprocessable is a valid request that refers to something that does not exist or
// cannot be used, such as an unknown product in an order (422).
func Unprocessable(message string, details ...any) *Error {
	return &Error{Kind: ErrUnprocessable, Message: message, Details: details}
}

// Unavailable is a dependency that does not answer (503).
func Unavailable(message string, details ...any) *Error {
	return &Error{Kind: ErrUnavailable, Message: message, Details: details}
}

// Validator gathers field errors so a request reports all of them at once.
//
//	var v apperr.Validator
//	v.Check(len(name) >= 2, "name", "must be at least 2 characters")
//	if err := v.Err(); err != nil { return err }
type Validator struct {
	fields []FieldError
}

// Check records message for field when ok is false; it returns ok.
func (v *Validator) Check(ok bool, field, message string) bool {
	if !ok {
		v.Add(field, message)
	}
	return ok
}

// Add records an invalid field.
func (v *Validator) Add(field, message string) {
	v.fields = append(v.fields, FieldError{Field: field, Message: message})
}

// Err returns the Validation error of the recorded fields, or nil when there are none.
func (v *Validator) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return Validation(v.fields...)
}

// String lists the recorded fields, for logs and test failures.
func (v *Validator) String() string {
	parts := make([]string, len(v.fields))
	for i, f := range v.fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}
