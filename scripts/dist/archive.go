package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"time"
)

// File is one archive entry: Name in the archive, read from Path.
type File struct {
	Name string
	Path string
	Mode int64
}

// WriteArchive writes a .tar.gz holding files at the top level, whose bytes
// depend only on the files' contents, names and modes and on mtime: entries
// sorted by name, owner 0:0 without names, every time mtime, gzip header
// without name or time. It returns the archive's hex sha256.
func WriteArchive(path string, files []File, mtime time.Time) (string, error) {
	files = append([]File(nil), files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp) // after a successful rename: a no-op
	h := sha256.New()
	gz, err := gzip.NewWriterLevel(io.MultiWriter(f, h), gzip.BestCompression)
	if err != nil {
		f.Close()
		return "", err
	}
	tw := tar.NewWriter(gz)
	for _, file := range files {
		if err := addFile(tw, file, mtime); err != nil {
			f.Close()
			return "", fmt.Errorf("%s: %w", file.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return "", err
	}
	if err := gz.Close(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sha256Of(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func addFile(tw *tar.Writer, file File, mtime time.Time) error {
	src, err := os.Open(file.Path)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", file.Path)
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     file.Name,
		Size:     st.Size(),
		Mode:     file.Mode,
		ModTime:  mtime.UTC().Truncate(time.Second),
		Format:   tar.FormatUSTAR,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, src)
	if err != nil {
		return err
	}
	if n != st.Size() {
		return fmt.Errorf("%s changed while archived", file.Path)
	}
	return nil
}
