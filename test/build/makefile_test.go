package build

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2ETestsTheImagesOfVERSION: `make e2e` (and so `make e2e-local`, whose `make images`
// tags every image with VERSION) runs the suite with the operator's image and the Shop's
// services image of the same VERSION, not the operator of one and the services of another.
func TestE2ETestsTheImagesOfVERSION(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	const version = "v9.8.7-test"
	cmd := exec.CommandContext(t.Context(), "make", "-n", "--no-print-directory", "e2e", "VERSION="+version, "KUBECTL=/bin/true")
	cmd.Dir = filepath.Join("..", "..")
	// What the environment says wins over the Makefile's defaults (?=): leave none of it.
	for _, kv := range cmd.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "E2E_SHOP_VERSION", "E2E_MANAGER_IMAGE", "IMG", "MANAGER_IMG", "SERVICES_IMG", "MAKEFLAGS":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n e2e: %v\n%s", err, out)
	}
	recipe := string(out)
	for _, want := range []string{
		"E2E_MANAGER_IMAGE=ghcr.io/shopkeeper-dev/shopkeeper:" + version + " ",
		"E2E_SHOP_VERSION=" + version + " ",
	} {
		if !strings.Contains(recipe, want) {
			t.Errorf("make e2e VERSION=%s does not pass %s\n%s", version, strings.TrimSpace(want), recipe)
		}
	}
}
