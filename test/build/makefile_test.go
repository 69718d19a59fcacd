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
	const version = "v9.8.7-test"
	recipe := makeDryRun(t, "e2e", "VERSION="+version, "KUBECTL=/bin/true")
	for _, want := range []string{
		"E2E_MANAGER_IMAGE=ghcr.io/shopkeeper-dev/shopkeeper:" + version + " ",
		"E2E_SHOP_VERSION=" + version + " ",
	} {
		if !strings.Contains(recipe, want) {
			t.Errorf("make e2e VERSION=%s does not pass %s\n%s", version, strings.TrimSpace(want), recipe)
		}
	}
}

// TestDemoRunsTheImagesOfVERSION: `make demo VERSION=…` builds the images with that tag, so
// hack/demo-cluster.sh must be told it, and the broker image's name, to give the Shop those
// rather than the sample's v0.1.0, which the local cluster's node would not hold.
func TestDemoRunsTheImagesOfVERSION(t *testing.T) {
	const version = "v9.8.7-test"
	recipe := makeDryRun(t, "demo", "VERSION="+version)
	want := "VERSION=" + version + " RABBITMQ_IMG=localhost/shopkeeper/rabbitmq:" + version + " hack/demo-cluster.sh up"
	if !strings.Contains(recipe, want) {
		t.Errorf("make demo VERSION=%s does not run %s\n%s", version, want, recipe)
	}
}

// makeDryRun prints the commands `make -n <target> <vars...>` would run from the repository's
// root, with none of the images' variables taken from the test's environment.
func makeDryRun(t *testing.T, target string, vars ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cmd := exec.CommandContext(t.Context(), "make", append([]string{"-n", "--no-print-directory", target}, vars...)...)
	cmd.Dir = filepath.Join("..", "..")
	// What the environment says wins over the Makefile's defaults (?=): leave none of it.
	for _, kv := range cmd.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "E2E_SHOP_VERSION", "E2E_MANAGER_IMAGE", "IMG", "MANAGER_IMG", "SERVICES_IMG", "RABBITMQ_IMG", "VERSION", "MAKEFLAGS":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", target, err, out)
	}
	return string(out)
}
