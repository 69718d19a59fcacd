// Package images holds the checks of how the images are built.
package images

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestBuildContextHoldsWhatTheDockerfileCopies: .dockerignore leaves everything out of the
// build context but what it lets back in by name, so every source the Dockerfile copies from
// the context must be let back in: a directory added to the build and forgotten here makes
// `docker build` fail for want of its files.
func TestBuildContextHoldsWhatTheDockerfileCopies(t *testing.T) {
	allowed := map[string]bool{}
	for _, line := range lines(t, "../../.dockerignore") {
		if name, ok := strings.CutPrefix(line, "!"); ok {
			allowed[name] = true
		}
	}
	copied := 0
	for _, line := range lines(t, "../../Dockerfile") {
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "COPY" || strings.HasPrefix(fields[1], "--from=") {
			continue
		}
		for _, src := range fields[1 : len(fields)-1] {
			copied++
			if !allowed[src] {
				t.Errorf("the Dockerfile copies %s, which .dockerignore leaves out of the build context (add !%s)", src, src)
			}
		}
	}
	if copied == 0 {
		t.Fatal("no COPY from the build context found in the Dockerfile")
	}
}

// lines returns the lines of the file at path that are neither blank nor comments.
func lines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
