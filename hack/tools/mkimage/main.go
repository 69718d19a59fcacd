// Command mkimage writes a container image as a docker-archive tarball without any daemon
// or registry: the layers are files it is given (a static binary, a configuration file,
// a root filesystem already tarred) on an empty base, and the configuration sets the
// entrypoint and the user. `ctr images import`, `kind load image-archive` and
// `docker load` all read its output.
//
//	mkimage -o bin/images/manager.tar -t example.com/manager:v1 \
//	    -add bin/manager:/manager -user 65532:65532 -entrypoint /manager
//
// Every layer is reproducible: files are owned by root (unless a -dir says otherwise),
// carry the time of SOURCE_DATE_EPOCH (default the Unix epoch) and keep only their
// permission bits, so the same inputs give the same image digest.
package main

import (
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	spec, out, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(2)
	}
	if err := spec.write(out); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// listFlag collects every value of a flag given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// parseArgs turns the command line into an image spec and the output path.
func parseArgs(args []string) (*imageSpec, string, error) {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var (
		out                                = fs.String("o", "", "output tarball (docker-archive format)")
		user                               = fs.String("user", "", "user the image runs as, UID[:GID]")
		workdir                            = fs.String("workdir", "", "working directory")
		platform                           = fs.String("platform", "linux/"+runtime.GOARCH, "OS/ARCH of the image")
		gzipLevel                          = fs.Int("gzip-level", 6, "gzip level of the layers, 1 (fast) to 9 (small)")
		tags, adds, dirs, links, layers    listFlag
		entrypoint, cm, env, labels, ports listFlag
		volumes                            listFlag
	)
	fs.Var(&tags, "t", "tag of the image, e.g. example.com/name:v1 (repeatable)")
	fs.Var(&adds, "add", "SRC:DST: put file SRC at DST in the image, keeping its permission bits (repeatable)")
	fs.Var(&dirs, "dir", "PATH[:UID:GID[:MODE]]: make an empty directory, e.g. /data:65532:65532:0750 (repeatable)")
	fs.Var(&links, "symlink", "/LINK:TARGET: make a symbolic link, e.g. /user:shop-services for a multi-call binary (repeatable)")
	fs.Var(&layers, "layer", "an uncompressed tar to add as a layer of its own, e.g. a root filesystem (repeatable)")
	fs.Var(&entrypoint, "entrypoint", "one argument of the entrypoint (repeat for each)")
	fs.Var(&cm, "cmd", "one argument of the default command (repeat for each)")
	fs.Var(&env, "env", "KEY=VALUE in the environment (repeatable)")
	fs.Var(&labels, "label", "KEY=VALUE label (repeatable)")
	fs.Var(&ports, "port", "exposed port, e.g. 8080/tcp (repeatable)")
	fs.Var(&volumes, "volume", "path declared as a volume (repeatable)")
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	if fs.NArg() > 0 {
		return nil, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *out == "" || len(tags) == 0 {
		return nil, "", errors.New("-o and at least one -t are required")
	}
	if len(adds)+len(dirs)+len(links)+len(layers) == 0 {
		return nil, "", errors.New("the image would be empty: give -add, -dir, -symlink or -layer")
	}
	if *gzipLevel < gzip.BestSpeed || *gzipLevel > gzip.BestCompression {
		return nil, "", fmt.Errorf("-gzip-level %d: want 1 to 9", *gzipLevel)
	}
	osName, arch, ok := strings.Cut(*platform, "/")
	if !ok {
		return nil, "", fmt.Errorf("-platform %q: want OS/ARCH", *platform)
	}

	spec := &imageSpec{
		tags:       tags,
		layerTars:  layers,
		os:         osName,
		arch:       arch,
		entrypoint: entrypoint,
		cmd:        cm,
		user:       *user,
		workdir:    *workdir,
		env:        env,
		ports:      ports,
		volumes:    volumes,
		gzipLevel:  *gzipLevel,
	}
	var err error
	if spec.created, err = sourceDate(); err != nil {
		return nil, "", err
	}
	if spec.labels, err = keyValues(labels); err != nil {
		return nil, "", fmt.Errorf("-label: %w", err)
	}
	for _, e := range env {
		if !strings.Contains(e, "=") {
			return nil, "", fmt.Errorf("-env %q: want KEY=VALUE", e)
		}
	}
	for _, a := range adds {
		f, err := parseAdd(a)
		if err != nil {
			return nil, "", err
		}
		spec.files = append(spec.files, f)
	}
	for _, d := range dirs {
		f, err := parseDir(d)
		if err != nil {
			return nil, "", err
		}
		spec.files = append(spec.files, f)
	}
	for _, l := range links {
		f, err := parseSymlink(l)
		if err != nil {
			return nil, "", err
		}
		spec.files = append(spec.files, f)
	}
	return spec, *out, nil
}

// parseSymlink reads /LINK:TARGET.
func parseSymlink(v string) (fileEntry, error) {
	link, target, ok := strings.Cut(v, ":")
	if !ok || target == "" || !strings.HasPrefix(link, "/") {
		return fileEntry{}, fmt.Errorf("-symlink %q: want /LINK:TARGET", v)
	}
	return fileEntry{dst: link, linkTarget: target}, nil
}

// parseAdd reads SRC:DST.
func parseAdd(v string) (fileEntry, error) {
	src, dst, ok := strings.Cut(v, ":")
	if !ok || src == "" || !strings.HasPrefix(dst, "/") {
		return fileEntry{}, fmt.Errorf("-add %q: want SRC:/ABSOLUTE/DST", v)
	}
	return fileEntry{src: src, dst: dst}, nil
}

// parseDir reads PATH[:UID:GID[:MODE]].
func parseDir(v string) (fileEntry, error) {
	parts := strings.Split(v, ":")
	f := fileEntry{dst: parts[0], dir: true, mode: 0o755}
	if !strings.HasPrefix(f.dst, "/") || (len(parts) != 1 && len(parts) != 3 && len(parts) != 4) {
		return fileEntry{}, fmt.Errorf("-dir %q: want /PATH[:UID:GID[:MODE]]", v)
	}
	if len(parts) >= 3 {
		uid, err1 := strconv.Atoi(parts[1])
		gid, err2 := strconv.Atoi(parts[2])
		if err := errors.Join(err1, err2); err != nil {
			return fileEntry{}, fmt.Errorf("-dir %q: %w", v, err)
		}
		f.uid, f.gid = uid, gid
	}
	if len(parts) == 4 {
		m, err := strconv.ParseInt(parts[3], 8, 32)
		if err != nil {
			return fileEntry{}, fmt.Errorf("-dir %q: mode: %w", v, err)
		}
		f.mode = m
	}
	return f, nil
}

// keyValues turns KEY=VALUE strings into a map.
func keyValues(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}

// sourceDate is the time stamped on the image and its files: SOURCE_DATE_EPOCH when set
// (the reproducible-builds convention), else the Unix epoch.
func sourceDate() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	s, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
	}
	return time.Unix(s, 0).UTC(), nil
}
