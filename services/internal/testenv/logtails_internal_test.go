package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogTails(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"node.log":  "one\ntwo\nthree\nfour\n",
		"start.log": "only\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	got := logTails(dir, 2)
	for _, want := range []string{"== node.log\nthree\nfour\n", "== start.log\nonly\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("logTails = %q, want it to hold %q", got, want)
		}
	}
	if strings.Contains(got, "two") || strings.Contains(got, "sub") {
		t.Errorf("logTails = %q: more than the last 2 lines, or a folder", got)
	}
	if got := logTails(filepath.Join(dir, "missing"), 2); !strings.Contains(got, "no such file") {
		t.Errorf("logTails of a missing folder = %q, want the error", got)
	}
}
