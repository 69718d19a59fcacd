package build

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCIKeysTheKubeBinariesCacheByTheirPins: the ci workflow caches bin/k8s under a key
// made of the files hack/kube-binaries.sh pins the binaries with. A file the script pins
// but the key leaves out makes a change of it restore the old binaries under the same key:
// the script rebuilds them all at every run, and the cache, hit, is never saved anew.
func TestCIKeysTheKubeBinariesCacheByTheirPins(t *testing.T) {
	root := filepath.Join("..", "..")
	script, err := os.ReadFile(filepath.Join(root, "hack", "kube-binaries.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^pins=\$\(cat "\$\{pinned\[@\]\}" \| sha256sum`).Match(script) {
		t.Fatal(`hack/kube-binaries.sh: no pins=$(cat "${pinned[@]}" | sha256sum ...) line`)
	}
	var pinned [][]byte
	for _, line := range regexp.MustCompile(`(?m)^.*\bpinned\+?=\(.*$`).FindAll(script, -1) {
		for _, f := range regexp.MustCompile(`"\$mod/([^"]+)"`).FindAllSubmatch(line, -1) {
			pinned = append(pinned, f[1])
		}
	}
	if len(pinned) == 0 {
		t.Fatal(`hack/kube-binaries.sh: no "$mod/..." file in its pinned=(...) lines`)
	}
	workflow, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "ci.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The test-kube-min job's folder holds the binaries of both modules: hack/tools/kube's
	// and hack/tools/kube-min's kube-apiserver, pinned by its go.mod and go.sum.
	for _, c := range []struct {
		name    string
		modules []string
	}{
		{"kube-binaries-", []string{"kube"}},
		{"kube-min-binaries-", []string{"kube", "kube-min"}},
	} {
		key := regexp.MustCompile(`(?m)^\s*key: ` + c.name + `.*$`).Find(workflow)
		if key == nil {
			t.Fatalf(".github/workflows/ci.yaml: no cache key %s...", c.name)
		}
		for _, m := range c.modules {
			for _, f := range pinned {
				if m == "kube-min" && string(f) == "etcd/main.go" {
					continue // kube-min builds no etcd
				}
				if want := "'hack/tools/" + m + "/" + string(f) + "'"; !strings.Contains(string(key), want) {
					t.Errorf("the cache key %q does not hash %s, which hack/kube-binaries.sh pins", strings.TrimSpace(string(key)), want)
				}
			}
		}
	}
}
