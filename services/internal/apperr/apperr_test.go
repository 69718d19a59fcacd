package apperr_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
)

func TestKindsSurviveWrapping(t *testing.T) {
	tests := []struct {
		err  error
		kind error
	}{
		{apperr.NotFound("User not found"), apperr.ErrNotFound},
		{apperr.Conflict("email already used"), apperr.ErrConflict},
		{apperr.Validation(apperr.FieldError{Field: "name", Message: "too short"}), apperr.ErrValidation},
		{apperr.Unprocessable("unknown product"), apperr.ErrUnprocessable},
		{apperr.BadRequest("bad limit"), apperr.ErrBadRequest},
	}
	for _, tt := range tests {
		wrapped := fmt.Errorf("store: %w", tt.err)
		if !errors.Is(wrapped, tt.kind) {
			t.Errorf("errors.Is(%v, %v) = false", wrapped, tt.kind)
		}
		if errors.Is(wrapped, apperr.ErrUnavailable) {
			t.Errorf("errors.Is(%v, ErrUnavailable) = true", wrapped)
		}
	}
}

func TestValidator(t *testing.T) {
	var v apperr.Validator
	if v.Err() != nil {
		t.Fatal("empty validator reports an error")
	}
	v.Check(true, "name", "never recorded")
	v.Check(false, "email", "must contain @")
	v.Add("name", "too short")
	var ae *apperr.Error
	if !errors.As(v.Err(), &ae) || ae.Message != "validation failed" || len(ae.Details) != 2 {
		t.Fatalf("Err() = %#v", v.Err())
	}
	if got := ae.Details[0].(apperr.FieldError); got.Field != "email" || got.Message != "must contain @" {
		t.Errorf("first detail = %+v", got)
	}
}
