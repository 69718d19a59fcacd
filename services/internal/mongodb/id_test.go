package mongodb_test

import (
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

func TestParseID(t *testing.T) {
	const id = "6650f1c2a4b7e3d9c1a2b3c4"
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"an id", id, true},
		// One id, one spelling: stores, locks and duplicate checks key on the string.
		{"upper case", strings.ToUpper(id), false},
		{"one letter upper case", "6650F1c2a4b7e3d9c1a2b3c4", false},
		{"a new id", mongodb.NewID().Hex(), true},
		{"too short", id[:23], false},
		{"too long", id + "0", false},
		{"not hex", "zz" + id[2:], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := mongodb.ParseID(tt.in)
			if ok != tt.ok {
				t.Fatalf("ParseID(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
			if ok && got.Hex() != tt.in {
				t.Errorf("ParseID(%q) = %s", tt.in, got.Hex())
			}
		})
	}
}
