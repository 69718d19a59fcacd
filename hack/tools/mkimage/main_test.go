package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestParseArgsRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no output", []string{"-t", "x:v1", "-dir", "/d"}, "-o and at least one -t"},
		{"no tag", []string{"-o", "x.tar", "-dir", "/d"}, "-o and at least one -t"},
		{"empty image", []string{"-o", "x.tar", "-t", "x:v1"}, "would be empty"},
		{"relative destination", []string{"-o", "x.tar", "-t", "x:v1", "-add", "a:b"}, "SRC:/ABSOLUTE/DST"},
		{"dir without gid", []string{"-o", "x.tar", "-t", "x:v1", "-dir", "/d:1"}, "/PATH[:UID:GID[:MODE]]"},
		{"dir bad mode", []string{"-o", "x.tar", "-t", "x:v1", "-dir", "/d:1:1:9"}, "mode"},
		{"relative link", []string{"-o", "x.tar", "-t", "x:v1", "-symlink", "user:server"}, "/LINK:TARGET"},
		{"link without target", []string{"-o", "x.tar", "-t", "x:v1", "-symlink", "/user"}, "/LINK:TARGET"},
		{"bad env", []string{"-o", "x.tar", "-t", "x:v1", "-dir", "/d", "-env", "X"}, "KEY=VALUE"},
		{"bad platform", []string{"-o", "x.tar", "-t", "x:v1", "-dir", "/d", "-platform", "linux"}, "OS/ARCH"},
		{"bad gzip level", []string{"-o", "x.tar", "-t", "x:v1", "-dir", "/d", "-gzip-level", "0"}, "want 1 to 9"},
		{"stray argument", []string{"-o", "x.tar", "-t", "x:v1", "-dir", "/d", "extra"}, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseArgs(tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseArgs(%q) error = %v, want one containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestWriteImage builds an image the way `make images` does and reads it back as a
// container runtime would: the tags, the configuration and the files with their owners
// and modes.
func TestWriteImage(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	if err := os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "app.conf")
	if err := os.WriteFile(conf, []byte("listen = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base.tar")
	writeTar(t, base, map[string]string{"etc/os-release": "ID=test\n"})

	out := filepath.Join(dir, "image.tar")
	spec, gotOut, err := parseArgs([]string{
		"-o", out, "-t", "example.com/app:v1", "-t", "example.com/app:latest-test",
		"-layer", base,
		"-add", bin + ":/server", "-add", conf + ":/etc/app/app.conf",
		"-dir", "/data:65532:65532:0750", "-dir", "/tmp:0:0:1777", "-symlink", "/bin/app:../server",
		"-user", "65532:65532", "-entrypoint", "/server", "-entrypoint", "-v",
		"-env", "HOME=/data", "-label", "org.opencontainers.image.version=v1",
		"-port", "8080/tcp", "-volume", "/data", "-platform", "linux/arm64",
	})
	if err != nil {
		t.Fatal(err)
	}
	if gotOut != out {
		t.Fatalf("output = %q, want %q", gotOut, out)
	}
	if err := spec.write(out); err != nil {
		t.Fatal(err)
	}

	for _, ref := range []string{"example.com/app:v1", "example.com/app:latest-test"} {
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tarball.ImageFromPath(out, &tag); err != nil {
			t.Fatalf("tag %s not in the archive: %v", ref, err)
		}
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "arm64" {
		t.Errorf("platform = %s/%s, want linux/arm64", cf.OS, cf.Architecture)
	}
	if got := cf.Created.Unix(); got != 1700000000 {
		t.Errorf("created = %d, want SOURCE_DATE_EPOCH", got)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/server", "-v"}) || c.User != "65532:65532" ||
		!slices.Equal(c.Env, []string{"HOME=/data"}) || c.Labels["org.opencontainers.image.version"] != "v1" {
		t.Errorf("config = %+v", c)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports = %v, want 8080/tcp", c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("volumes = %v, want /data", c.Volumes)
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("%d layers, want the -layer tar and one of files", len(layers))
	}
	base0 := readLayer(t, layers[0])
	if base0["etc/os-release"].Name == "" {
		t.Errorf("base layer lacks etc/os-release: %v", base0)
	}
	files := readLayer(t, layers[1])
	for _, tc := range []struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
	}{
		{"etc/", tar.TypeDir, 0o755, 0, 0},
		{"etc/app/", tar.TypeDir, 0o755, 0, 0},
		{"etc/app/app.conf", tar.TypeReg, 0o644, 0, 0},
		{"server", tar.TypeReg, 0o755, 0, 0},
		{"data/", tar.TypeDir, 0o750, 65532, 65532},
		{"tmp/", tar.TypeDir, 0o1777, 0, 0},
		{"bin/", tar.TypeDir, 0o755, 0, 0},
		{"bin/app", tar.TypeSymlink, 0o777, 0, 0},
	} {
		h, ok := files[tc.name]
		if !ok {
			t.Errorf("layer lacks %s; has %v", tc.name, keys(files))
			continue
		}
		if h.Typeflag != tc.typ || h.Mode != tc.mode || h.Uid != tc.uid || h.Gid != tc.gid {
			t.Errorf("%s: type %c mode %o owner %d:%d, want type %c mode %o owner %d:%d",
				tc.name, h.Typeflag, h.Mode, h.Uid, h.Gid, tc.typ, tc.mode, tc.uid, tc.gid)
		}
		if tc.typ == tar.TypeSymlink && h.Linkname != "../server" {
			t.Errorf("%s: links to %q, want ../server", tc.name, h.Linkname)
		}
		if h.ModTime.Unix() != 1700000000 {
			t.Errorf("%s: mtime %v, want SOURCE_DATE_EPOCH", tc.name, h.ModTime)
		}
	}

	// The same inputs give the same image, so a rebuild with unchanged binaries changes nothing.
	again := filepath.Join(dir, "again.tar")
	if err := spec.write(again); err != nil {
		t.Fatal(err)
	}
	img2, err := tarball.ImageFromPath(again, nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Errorf("digests differ between two builds: %s, %s", d1, d2)
	}
}

func TestWriteRejectsDirectoryTwice(t *testing.T) {
	spec, out, err := parseArgs([]string{"-o", filepath.Join(t.TempDir(), "x.tar"), "-t", "x:v1", "-dir", "/d", "-dir", "/d"})
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.write(out); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("write error = %v, want one about a path already in the image", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed write left %s behind (stat error %v)", out, err)
	}
}

func writeTar(t *testing.T, p string, files map[string]string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for n, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

type layer interface {
	Uncompressed() (io.ReadCloser, error)
}

func readLayer(t *testing.T, l layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	headers := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return headers
		}
		if err != nil {
			t.Fatal(err)
		}
		headers[h.Name] = h
	}
}

func keys(m map[string]*tar.Header) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
