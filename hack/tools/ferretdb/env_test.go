package main

import (
	"strings"
	"testing"
)

func TestEnvDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
		err  string
	}{
		{"nothing set", nil, "data", ""},
		{"official image's form", map[string]string{"FERRETDB_HANDLER": "sqlite", "FERRETDB_SQLITE_URL": "file:/data/"}, "/data/", ""},
		{"with parameters", map[string]string{"FERRETDB_SQLITE_URL": "file:/state/?mode=rwc"}, "/state/", ""},
		{"relative folder", map[string]string{"FERRETDB_SQLITE_URL": "file:db/"}, "db/", ""},
		{"another backend", map[string]string{"FERRETDB_HANDLER": "postgresql"}, "", "only the sqlite backend"},
		{"not a file URL", map[string]string{"FERRETDB_SQLITE_URL": "/data/"}, "", "want file:DIR/"},
		{"a file, not a folder", map[string]string{"FERRETDB_SQLITE_URL": "file:/data/db.sqlite"}, "", "want file:DIR/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := envDefaults(func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("envDefaults = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
