package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// imageSpec is everything an image is made of.
type imageSpec struct {
	tags       []string
	files      []fileEntry // one layer, made here
	layerTars  []string    // one layer each, tarred by the caller
	os, arch   string
	entrypoint []string
	cmd        []string
	user       string
	workdir    string
	env        []string
	labels     map[string]string
	ports      []string
	volumes    []string
	created    time.Time
	gzipLevel  int
}

// fileEntry is a file copied into the image, or an empty directory or a symbolic link
// made in it.
type fileEntry struct {
	src        string // host file; empty for a directory or a link
	dst        string // absolute path in the image
	dir        bool
	linkTarget string // set for a symbolic link
	uid, gid   int
	mode       int64 // chmod bits (0755, 01777) of a directory; files keep their own
}

// write builds the image and writes it, under every tag, to out.
func (s *imageSpec) write(out string) error {
	img, err := s.build()
	if err != nil {
		return err
	}
	refs := make(map[name.Reference]v1.Image, len(s.tags))
	for _, t := range s.tags {
		tag, err := name.NewTag(t)
		if err != nil {
			return fmt.Errorf("tag %q: %w", t, err)
		}
		refs[tag] = img
	}
	// Write next to the destination and rename, so a failed run never leaves a torn archive
	// that a later import would take for an image.
	tmp := out + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

// build assembles the image: the -layer tars in order, then the layer of -add and -dir
// entries, then the configuration.
func (s *imageSpec) build() (v1.Image, error) {
	var layers []v1.Layer
	for _, p := range s.layerTars {
		l, err := tarball.LayerFromFile(p, tarball.WithCompressionLevel(s.gzipLevel))
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", p, err)
		}
		layers = append(layers, l)
	}
	if len(s.files) > 0 {
		b, err := s.filesLayer()
		if err != nil {
			return nil, err
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}, tarball.WithCompressionLevel(s.gzipLevel))
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}

	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = s.os, s.arch
	cf.Created = v1.Time{Time: s.created}
	cf.Config = v1.Config{
		Entrypoint: s.entrypoint,
		Cmd:        s.cmd,
		User:       s.user,
		WorkingDir: s.workdir,
		Env:        s.env,
		Labels:     s.labels,
	}
	if len(s.ports) > 0 {
		cf.Config.ExposedPorts = make(map[string]struct{}, len(s.ports))
		for _, p := range s.ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	if len(s.volumes) > 0 {
		cf.Config.Volumes = make(map[string]struct{}, len(s.volumes))
		for _, v := range s.volumes {
			cf.Config.Volumes[v] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// filesLayer tars the -add files and -dir directories, with the parent directories each
// needs, in a stable order.
func (s *imageSpec) filesLayer() ([]byte, error) {
	entries := append([]fileEntry(nil), s.files...)
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].dst < entries[j].dst })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	made := map[string]bool{"/": true}
	for _, e := range entries {
		if err := s.writeParents(tw, path.Dir(path.Clean(e.dst)), made); err != nil {
			return nil, err
		}
		if err := s.writeEntry(tw, e, made); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeParents writes root-owned 0755 headers for the directories above an entry that no
// earlier entry made.
func (s *imageSpec) writeParents(tw *tar.Writer, dir string, made map[string]bool) error {
	if made[dir] {
		return nil
	}
	if err := s.writeParents(tw, path.Dir(dir), made); err != nil {
		return err
	}
	made[dir] = true
	return tw.WriteHeader(s.header(dir, tar.TypeDir, 0o755, 0, 0, 0))
}

func (s *imageSpec) writeEntry(tw *tar.Writer, e fileEntry, made map[string]bool) error {
	dst := path.Clean(e.dst)
	if e.dir {
		if made[dst] {
			return fmt.Errorf("-dir %s: the path is already in the image", dst)
		}
		made[dst] = true
		return tw.WriteHeader(s.header(dst, tar.TypeDir, e.mode, e.uid, e.gid, 0))
	}
	if e.linkTarget != "" {
		h := s.header(dst, tar.TypeSymlink, 0o777, 0, 0, 0)
		h.Linkname = e.linkTarget
		return tw.WriteHeader(h)
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("-add %s: not a regular file", e.src)
	}
	if err := tw.WriteHeader(s.header(dst, tar.TypeReg, int64(fi.Mode().Perm()), 0, 0, fi.Size())); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

func (s *imageSpec) header(p string, typ byte, mode int64, uid, gid int, size int64) *tar.Header {
	n := p[1:] // layer paths are relative to the root
	if typ == tar.TypeDir {
		n += "/"
	}
	return &tar.Header{
		Typeflag: typ,
		Name:     n,
		Mode:     mode,
		Uid:      uid,
		Gid:      gid,
		Size:     size,
		ModTime:  s.created,
		Format:   tar.FormatPAX,
	}
}
