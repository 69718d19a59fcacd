package build

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// makeDryRun prints the commands `make -n <target> <vars...>` would run.
func makeDryRun(t *testing.T, target string, vars ...string) string {
	t.Helper()
	return runMake(t, append([]string{"-n", "--no-print-directory", target}, vars...)...)
}

// runMake runs make with args from the repository's root, with none of the images'
// variables taken from the test's environment (what it says wins over the Makefile's
// defaults, ?=), and returns its output; it fails the test when make fails.
func runMake(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cmd := exec.CommandContext(t.Context(), "make", args...)
	cmd.Dir = filepath.Join("..", "..")
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
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestRabbitMQImageTakesANewVERSION: the RabbitMQ image is a file target, remade from its
// cached root filesystem; a build with another VERSION must tag it with that one, as the
// demo's and the end-to-end suite's Shops ask for localhost/shopkeeper/rabbitmq:<VERSION>.
func TestRabbitMQImageTakesANewVERSION(t *testing.T) {
	bin := t.TempDir()
	rootfs := filepath.Join(bin, "images", "cache", "rabbitmq-rootfs.tar")
	if err := os.MkdirAll(filepath.Dir(rootfs), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTar(t, rootfs, "etc/hostname", "rabbit\n")
	for _, version := range []string{"v9.8.7-a", "v9.8.7-b", "v9.8.7-a"} {
		image := filepath.Join(bin, "images", "rabbitmq.tar")
		// -o: the root filesystem is never remade here (that is debootstrap's minutes).
		runMake(t, "--no-print-directory", "LOCALBIN="+bin, "-o", rootfs, image, "VERSION="+version)
		want := "localhost/shopkeeper/rabbitmq:" + version
		if got := repoTags(t, image); !slices.Equal(got, []string{want}) {
			t.Errorf("make VERSION=%s: the image is tagged %v, want %s", version, got, want)
		}
	}
}

// writeTar writes a tar file at path holding one regular file, name, with content.
func writeTar(t *testing.T, path, name, content string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(tw.Close(), f.Close()); err != nil {
		t.Fatal(err)
	}
}

// repoTags reads the tags of the one image of a docker-archive.
func repoTags(t *testing.T, archive string) []string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no manifest.json: %v", archive, err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var manifest []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
			t.Fatalf("%s: manifest.json: %v", archive, err)
		}
		if len(manifest) != 1 {
			t.Fatalf("%s: %d images, want 1", archive, len(manifest))
		}
		return manifest[0].RepoTags
	}
}
