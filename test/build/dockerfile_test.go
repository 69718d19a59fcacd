// Package build checks the repository's build files against the code they build.
package build

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/shopkeeper-dev/shopkeeper"

// TestDockerfileCopiesEveryImport: each build stage of the Dockerfile copies every folder
// of the repository its binary is built from, so `docker build` does not fail on a package
// that `go build` in a checkout finds (`make images` builds from the checkout, not from
// the Dockerfile).
func TestDockerfileCopiesEveryImport(t *testing.T) {
	root := filepath.Join("..", "..")
	copied := stageCopies(t, filepath.Join(root, "Dockerfile"))
	for stage, pkg := range map[string]string{
		"build-manager":  "./cmd/manager",
		"build-services": "./services/cmd/shopkeeper-services",
	} {
		have, ok := copied[stage]
		if !ok {
			t.Errorf("the Dockerfile has no stage %s", stage)
			continue
		}
		cmd := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f", "{{.ImportPath}}", pkg)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for imp := range strings.FieldsSeq(string(out)) {
			rest, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			top, _, _ := strings.Cut(rest, "/")
			if !have[top] {
				t.Errorf("stage %s does not copy %s/, which %s imports (%s)", stage, top, pkg, imp)
			}
		}
	}
}

// stageCopies returns, for each stage of the Dockerfile at path, the top folders its
// COPY instructions bring from the build context.
func stageCopies(t *testing.T, path string) map[string]map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stages := map[string]map[string]bool{}
	var current map[string]bool
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			current = map[string]bool{}
			if n := len(fields); n >= 3 && strings.EqualFold(fields[n-2], "AS") {
				stages[fields[n-1]] = current
			}
		case "COPY":
			if current == nil || strings.HasPrefix(fields[1], "--from") {
				continue
			}
			for _, src := range fields[1 : len(fields)-1] {
				current[strings.Trim(src, "/")] = true
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}
