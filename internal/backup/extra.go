package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
)

// ExtraWriter writes one extra file (e.g. data a migration exports) into a
// complete backup. Bytes go to a temporary name while their size and sha256
// are computed; Commit fsyncs, renames and records the file in the manifest
// (rewritten atomically), so `backup verify` checks it and a file cut short
// never looks part of the backup.
type ExtraWriter struct {
	dir, name, tmp string
	f              *os.File
	sum            hash.Hash
	n              int64
	w              io.Writer
}

// CreateExtra starts extra file name in the complete backup at dir. An older
// file of the same name is replaced on Commit.
func CreateExtra(dir, name string) (*ExtraWriter, error) {
	if name == "" || name != filepath.Base(name) || name == manifestName {
		return nil, fmt.Errorf("invalid extra file name %q", name)
	}
	if _, err := readManifest(dir); err != nil {
		return nil, fmt.Errorf("backup %s is not complete: %w", dir, err)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	os.Remove(tmp) // a leftover of a killed run
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode)
	if err != nil {
		return nil, describeFSError(err)
	}
	x := &ExtraWriter{dir: dir, name: name, tmp: tmp, f: f, sum: sha256.New()}
	x.w = io.MultiWriter(f, x.sum)
	return x, nil
}

// Write appends p to the file.
func (x *ExtraWriter) Write(p []byte) (int, error) {
	n, err := x.w.Write(p)
	x.n += int64(n)
	if err != nil {
		return n, describeFSError(err)
	}
	return n, nil
}

// Commit makes the file part of the backup and returns its manifest entry.
func (x *ExtraWriter) Commit() (File, error) {
	err := x.f.Sync()
	if cerr := x.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(x.tmp)
		return File{}, describeFSError(err)
	}
	file := File{Name: x.name, SHA256: hex.EncodeToString(x.sum.Sum(nil)), Bytes: x.n}
	if err := os.Rename(x.tmp, filepath.Join(x.dir, x.name)); err != nil {
		os.Remove(x.tmp)
		return File{}, describeFSError(err)
	}
	if err := addExtra(x.dir, file); err != nil {
		return File{}, err
	}
	return file, nil
}

// Abort removes the temporary file; safe after Commit.
func (x *ExtraWriter) Abort() {
	x.f.Close()
	os.Remove(x.tmp)
}

// addExtra records f in the manifest of the backup at dir.
func addExtra(dir string, f File) error {
	m, err := readManifest(dir)
	if err != nil {
		return err
	}
	replaced := false
	for i := range m.Extra {
		if m.Extra[i].Name == f.Name {
			m.Extra[i], replaced = f, true
		}
	}
	if !replaced {
		m.Extra = append(m.Extra, f)
	}
	data, err := jsonIndent(m)
	if err != nil {
		return err
	}
	// The old manifest is replaced by a rename: a crash leaves the old or the
	// new one, never a mix.
	os.Remove(filepath.Join(dir, "."+manifestName+".tmp"))
	if _, err := writeFileAtomic(dir, manifestName, data); err != nil {
		return describeFSError(err)
	}
	return fsyncDir(dir)
}

// FindExtra is the manifest entry of extra file name, or nil.
func (m *Manifest) FindExtra(name string) *File {
	for i := range m.Extra {
		if m.Extra[i].Name == name {
			return &m.Extra[i]
		}
	}
	return nil
}

// VerifyExtra checks one extra file's size and sha256 against the manifest.
func VerifyExtra(e *Entry, name string) error {
	f := e.Manifest.FindExtra(name)
	if f == nil {
		return fmt.Errorf("backup %s has no %s", e.ID, name)
	}
	if err := verifyFile(context.Background(), e.source(), *f); err != nil {
		return fmt.Errorf("backup %s: %s: %w", e.ID, name, err)
	}
	return nil
}

// Open reads the complete backup at dir (e.g. the folder an upgrade just
// wrote).
func Open(dir string) (*Entry, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("backup %s is not complete: %w", dir, err)
	}
	return &Entry{ID: m.ID, Path: dir, Revision: m.Revision, Time: m.StartedAt, Complete: true, Manifest: m}, nil
}
