package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStrayArgument: an argument that is no flag (a missing "--" in the chart's extraArgs,
// or an empty one) stops the manager with a word, rather than being ignored along with every
// flag after it.
func TestStrayArgument(t *testing.T) {
	manager := buildManager(t)
	for _, args := range [][]string{
		{"log-level=debug", "--stall-deadline=1m"},
		{"--log-level=debug", ""},
	} {
		cmd := exec.CommandContext(t.Context(), manager, append([]string{"--kubeconfig=" + filepath.Join(t.TempDir(), "none")}, args...)...)
		cmd.Env = []string{"KUBECONFIG=" + filepath.Join(t.TempDir(), "none")}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "unexpected argument") {
			t.Errorf("manager %q: %v, want exit 2 naming the unexpected argument:\n%s", args, err, out)
		}
	}
}
