package main

import (
	"slices"
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		want     string
		wantArgs []string
		err      string
	}{
		{"called through a link", []string{"/user"}, "user", []string{"/user"}, ""},
		{"link in a folder", []string{"/usr/local/bin/gateway", "-x"}, "gateway", []string{"/usr/local/bin/gateway", "-x"}, ""},
		{"name as first argument", []string{"/shopkeeper-services", "order", "-v"}, "order", []string{"order", "-v"}, ""},
		{"no name", []string{"/shopkeeper-services"}, "", nil, "one of: gateway, order, payment, product, user"},
		{"unknown name", []string{"/shopkeeper-services", "inventory"}, "", nil, "one of:"},
		{"empty command line", nil, "", nil, "one of:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, args, err := pick(tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("pick(%q) error = %v, want one containing %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want || !slices.Equal(args, tc.wantArgs) {
				t.Fatalf("pick(%q) = %q, %q, %v; want %q, %q", tc.args, got, args, err, tc.want, tc.wantArgs)
			}
		})
	}
}
