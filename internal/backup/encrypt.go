package backup

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync"

	"filippo.io/age"

	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/readlimit"
)

// Client-side encryption with age (filippo.io/age, the format's reference
// implementation: X25519 recipients, ChaCha20-Poly1305 in 64 KiB chunks):
// every file of the backup but its manifest (values, dumps, extras) is
// encrypted to the recipients after compression, so neither the bucket's
// operator nor anyone holding the files reads roles, rows or values
// without a private key. The manifest's sizes and sha256 are those of the
// stored (encrypted) bytes, so a backup's integrity is checked without a
// key; its SQL (and a restore) needs one.

// IdentityEnv holds an age private key (AGE-SECRET-KEY-1...);
// IdentityFileEnv names a file of them (as age -i takes).
const (
	IdentityEnv     = "HELM_CSGHUB_AGE_IDENTITY"
	IdentityFileEnv = "HELM_CSGHUB_AGE_IDENTITY_FILE"
)

// Encryption is how a backup's files are encrypted (nil: they are not).
type Encryption struct {
	Method string `json:"method"` // "age"
	// Recipients are the public keys the files are encrypted to.
	Recipients []string `json:"recipients"`
}

// ParseRecipients reads --encrypt-to values: an age public key (age1...)
// or a file of them, one per line (# comments), as age -R takes.
func ParseRecipients(values []string) ([]age.Recipient, []string, error) {
	var out []age.Recipient
	var names []string
	for _, v := range values {
		if strings.HasPrefix(v, "age1") {
			r, err := age.ParseX25519Recipient(v)
			if err != nil {
				return nil, nil, errs.Usagef("--encrypt-to %s: %v", v, err)
			}
			out, names = append(out, r), append(names, r.String())
			continue
		}
		data, err := readlimit.File(v, readlimit.Metadata)
		if err != nil {
			return nil, nil, errs.Usagef("--encrypt-to %s: neither an age public key (age1...) nor a readable recipients file: %v", v, err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		n := 0
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			r, err := age.ParseX25519Recipient(line)
			if err != nil {
				return nil, nil, errs.Usagef("--encrypt-to %s: line %q: %v", v, line, err)
			}
			out, names = append(out, r), append(names, r.String())
			n++
		}
		if n == 0 {
			return nil, nil, errs.Usagef("--encrypt-to %s: no recipient in the file", v)
		}
	}
	return out, names, nil
}

var identities struct {
	mu   sync.Mutex
	file string // --identity
}

// UseIdentityFile makes the command read age private keys from path
// (--identity), before $HELM_CSGHUB_AGE_IDENTITY and its _FILE variant.
func UseIdentityFile(path string) {
	identities.mu.Lock()
	defer identities.mu.Unlock()
	identities.file = path
}

// loadIdentities reads the keys a command was given; an encrypted backup
// needs one of them to be read.
func loadIdentities() ([]age.Identity, error) {
	identities.mu.Lock()
	file := identities.file
	identities.mu.Unlock()
	from := "--identity " + file
	if file == "" {
		file, from = os.Getenv(IdentityFileEnv), "$"+IdentityFileEnv
	}
	var text string
	switch {
	case file != "":
		data, err := readlimit.File(file, readlimit.Metadata)
		if err != nil {
			return nil, errs.Usagef("%s: %v", from, err)
		}
		text = string(data)
	case os.Getenv(IdentityEnv) != "":
		text, from = os.Getenv(IdentityEnv), "$"+IdentityEnv
	default:
		return nil, nil
	}
	ids, err := age.ParseIdentities(strings.NewReader(text))
	if err != nil {
		// the parser's message may quote the key: never shown
		return nil, errs.Usagef("%s holds no valid age private key (AGE-SECRET-KEY-1...)", from)
	}
	return ids, nil
}

// CheckCanDecrypt makes sure the command was given a key that opens
// backups encrypted to recipients (an upgrade must be able to restore its
// own backup if it has to roll back).
func CheckCanDecrypt(recipients []age.Recipient) error {
	ids, err := loadIdentities()
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return errs.Usagef("an encrypted backup is restored with its private key: give it with --identity FILE or $%s, or the automatic rollback could not restore the database", IdentityEnv)
	}
	// a round trip of a few bytes: does one of the keys open it?
	var buf strings.Builder
	w, err := age.Encrypt(&buf, recipients...)
	if err == nil {
		_, _ = io.WriteString(w, "check")
		err = w.Close()
	}
	if err == nil {
		_, err = age.Decrypt(strings.NewReader(buf.String()), ids...)
	}
	if err != nil {
		return errs.Usagef("none of the private keys given opens a backup encrypted to --encrypt-to: the automatic rollback could not restore it")
	}
	return nil
}

// decrypting opens the stored bytes of an encrypted file of backup id.
func decrypting(id string, stored io.Reader) (io.Reader, error) {
	ids, err := loadIdentities()
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errs.Preconditionf("backup %s is encrypted (age): give its private key with --identity FILE or $%s", id, IdentityEnv)
	}
	r, err := age.Decrypt(stored, ids...)
	if err != nil {
		return nil, errs.Preconditionf("backup %s: cannot decrypt with the keys given: %v", id, err)
	}
	return r, nil
}

// encryptingSink encrypts every file created through it.
type encryptingSink struct {
	backupSink
	to []age.Recipient
}

func (s encryptingSink) create(name string) (fileSink, error) {
	out, err := s.backupSink.create(name)
	if err != nil {
		return nil, err
	}
	f, err := encryptFile(out, s.to)
	if err != nil {
		out.abort()
		return nil, err
	}
	return f, nil
}

// encryptFile encrypts what is written to it into out.
func encryptFile(out fileSink, to []age.Recipient) (*encryptedFile, error) {
	f := &encryptedFile{out: out, sum: sha256.New()}
	var err error
	if f.w, err = age.Encrypt(io.MultiWriter(out, f.sum, &f.n), to...); err != nil {
		return nil, err
	}
	return f, nil
}

// encryptedFile is a file written encrypted; stored() is what the
// manifest records: the size and sha256 of the encrypted bytes.
type encryptedFile struct {
	out fileSink
	w   io.WriteCloser
	sum hash.Hash
	n   countWriter
}

func (f *encryptedFile) Write(p []byte) (int, error) { return f.w.Write(p) }

func (f *encryptedFile) commit() error {
	if err := f.w.Close(); err != nil {
		f.out.abort()
		return err
	}
	return f.out.commit()
}

func (f *encryptedFile) abort() { f.out.abort() }

func (f *encryptedFile) stored() (string, int64) { return hex.EncodeToString(f.sum.Sum(nil)), f.n.n }

// storedFile is a file sink that knows the size and sha256 of what it
// stored when that differs from what was written to it.
type storedFile interface{ stored() (string, int64) }

func describeEncryption(e *Encryption) string {
	if e == nil {
		return ""
	}
	return fmt.Sprintf("%s to %d recipient(s)", e.Method, len(e.Recipients))
}
