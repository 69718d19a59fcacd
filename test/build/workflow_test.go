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
	pinsLine := regexp.MustCompile(`(?m)^pins=\$\(cat (.*)\| sha256sum`).FindSubmatch(script)
	if pinsLine == nil {
		t.Fatal("hack/kube-binaries.sh: no pins=$(cat ... | sha256sum ...) line")
	}
	pinned := regexp.MustCompile(`"\$mod/([^"]+)"`).FindAllSubmatch(pinsLine[1], -1)
	if len(pinned) == 0 {
		t.Fatalf("hack/kube-binaries.sh: no \"$mod/...\" file in %q", pinsLine[1])
	}
	workflow, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "ci.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`(?m)^\s*key: kube-binaries-.*$`).Find(workflow)
	if key == nil {
		t.Fatal(".github/workflows/ci.yaml: no cache key kube-binaries-...")
	}
	for _, f := range pinned {
		if want := "'hack/tools/kube/" + string(f[1]) + "'"; !strings.Contains(string(key), want) {
			t.Errorf("the cache key %q does not hash %s, which hack/kube-binaries.sh pins", strings.TrimSpace(string(key)), want)
		}
	}
}
