package restore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/opencsgs/helm-csghub/internal/backup"
)

// Suffixes of the databases a restore makes next to a live one: the copy
// a dump is replayed into, and the name the live database is moved to at the
// swap until it is dropped.
const (
	restoreSuffix = "__restore"
	oldSuffix     = "__old"
	// maxIdent is PostgreSQL's identifier limit (NAMEDATALEN-1 bytes): a
	// longer name would be cut by the server, and two cut names could meet.
	maxIdent = 63
)

// sideName is db with suffix, shortened (with a hash of db, so that it stays
// unique and the same on every run) when the result would exceed maxIdent.
func sideName(db, suffix string) string {
	if len(db)+len(suffix) <= maxIdent {
		return db + suffix
	}
	sum := sha256.Sum256([]byte(db))
	keep := maxIdent - len(suffix) - 9 // "_" + 8 hex
	for keep > 0 && !utf8.RuneStart(db[keep]) {
		keep--
	}
	return db[:keep] + "_" + hex.EncodeToString(sum[:4]) + suffix
}

// renamer rewrites a `pg_dump --create` dump of db so that it creates and
// fills database to instead, leaving every other byte as it is. Only what
// pg_dump writes about the database itself names it: the DATABASE entry
// (CREATE DATABASE, ALTER DATABASE ... OWNER), the \connect lines, the
// DATABASE PROPERTIES entry (ALTER DATABASE ... SET, ALTER ROLE ... IN
// DATABASE), and the comment, security label and grants on the database.
// Those statements are rewritten only inside their own entries (pg_dump's
// `-- Name: ...; Type: ...` headers, never inside COPY data), so a table row
// or function body that happens to look like one is left alone.
//
// It is also a guard: before CREATE DATABASE only SET lines and comments may
// run (the session sits in a maintenance database), a \connect to any other
// database or a DROP DATABASE stops the stream, and the dump must create db.
// The stream then ends with an error (Err), so psql runs nothing more.
type renamer struct {
	db, to   string
	qto      string // to as a quoted identifier
	br       *bufio.Reader
	out      bytes.Buffer
	entry    backup.TOCEntry
	inCopy   bool
	created  bool
	midLine  bool // inside a line longer than the buffer: passed through
	err      error
	finished bool
}

func newRenamer(r io.Reader, db, to string) *renamer {
	return &renamer{db: db, to: to, qto: pgx.Identifier{to}.Sanitize(), br: bufio.NewReaderSize(r, 64<<10)}
}

// Err is the reason the stream was stopped, nil when the dump was whole and
// rewritten.
func (r *renamer) Err() error { return r.err }

func (r *renamer) Read(p []byte) (int, error) {
	for r.out.Len() == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.finished {
			return 0, io.EOF
		}
		chunk, err := r.br.ReadSlice('\n')
		if len(chunk) > 0 {
			if r.midLine {
				r.out.Write(chunk)
			} else if rerr := r.line(chunk); rerr != nil {
				r.err = rerr
				r.out.Reset()
				return 0, rerr
			}
			r.midLine = len(chunk) > 0 && chunk[len(chunk)-1] != '\n'
		}
		switch {
		case err == bufio.ErrBufferFull:
		case err == io.EOF:
			if !r.created {
				r.err = fmt.Errorf("the dump never creates database %s", r.db)
				return 0, r.err
			}
			r.finished = true
		case err != nil:
			r.err = err
			return 0, err
		}
	}
	return r.out.Read(p)
}

// line handles the start of one line (the whole line unless it is longer
// than the buffer; its rest then passes through unchanged).
func (r *renamer) line(raw []byte) error {
	text := strings.TrimRight(string(raw), "\r\n")
	if r.inCopy {
		if text == `\.` {
			r.inCopy = false
		}
		r.out.Write(raw)
		return nil
	}
	if t, ok := backup.TOCEntryOf(text); ok {
		r.entry = t
		r.out.Write(raw)
		return nil
	}
	if target, ok := backup.ConnectTarget(text); ok || strings.HasPrefix(text, `\connect`) || strings.HasPrefix(text, `\c `) {
		if !ok || target != r.db || !r.created {
			return fmt.Errorf("the dump of %s connects to another database (%q) or before creating its own: not replayed", r.db, clip(text))
		}
		r.out.WriteString(backup.ConnectLine(r.to) + "\n")
		return nil
	}
	if strings.HasPrefix(text, "DROP DATABASE") {
		return fmt.Errorf("the dump of %s drops a database (%q): not replayed", r.db, clip(text))
	}
	if !r.created {
		if rest, ok := strings.CutPrefix(text, "CREATE DATABASE "); ok {
			name, tail, ok := backup.ParseIdent(rest)
			if !ok || name != r.db || r.entry.Type != "DATABASE" {
				return fmt.Errorf("the dump of %s creates another database (%q): not replayed", r.db, clip(text))
			}
			r.created = true
			r.out.WriteString("CREATE DATABASE " + r.qto + tail + lineEnd(raw))
			return nil
		}
		// in the maintenance database: nothing but settings and comments
		if text != "" && !strings.HasPrefix(text, "--") && !strings.HasPrefix(text, "SET ") &&
			!strings.HasPrefix(text, "SELECT pg_catalog.set_config(") && !strings.HasPrefix(text, `\restrict `) &&
			!strings.HasPrefix(text, `\unrestrict `) && !strings.HasPrefix(text, `\encoding `) {
			return fmt.Errorf("the dump of %s runs %q before creating its database: not replayed", r.db, clip(text))
		}
		r.out.Write(raw)
		return nil
	}
	if r.entry.Type == "TABLE DATA" && strings.HasPrefix(text, "COPY ") && strings.HasSuffix(text, " FROM stdin;") {
		r.inCopy = true
		r.out.Write(raw)
		return nil
	}
	if out, ok := r.rewrite(text); ok {
		r.out.WriteString(out + lineEnd(raw))
		return nil
	}
	r.out.Write(raw)
	return nil
}

// rewrite renames the database in the statements of the entries about it.
func (r *renamer) rewrite(text string) (string, bool) {
	onDB := r.entry.Name == "DATABASE "+quoteIfNeeded(r.db) || r.entry.Name == "DATABASE "+pgx.Identifier{r.db}.Sanitize()
	switch r.entry.Type {
	case "DATABASE", "DATABASE PROPERTIES":
		if out, ok := r.swapIdent(text, "ALTER DATABASE "); ok {
			return out, true
		}
		if strings.HasPrefix(text, "ALTER ROLE ") {
			return r.swapIdentAfter(text, " IN DATABASE ")
		}
	case "COMMENT":
		if onDB {
			return r.swapIdent(text, "COMMENT ON DATABASE ")
		}
	case "SECURITY LABEL":
		if onDB && strings.HasPrefix(text, "SECURITY LABEL ") {
			return r.swapIdentAfter(text, " ON DATABASE ")
		}
	case "ACL":
		if onDB && (strings.HasPrefix(text, "GRANT ") || strings.HasPrefix(text, "REVOKE ")) {
			return r.swapIdentAfter(text, " ON DATABASE ")
		}
	}
	return "", false
}

// swapIdent replaces the identifier after prefix when it names db.
func (r *renamer) swapIdent(text, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(text, prefix)
	if !ok {
		return "", false
	}
	name, tail, ok := backup.ParseIdent(rest)
	if !ok || name != r.db {
		return "", false
	}
	return prefix + r.qto + tail, true
}

// swapIdentAfter replaces the identifier after the first marker when it names db.
func (r *renamer) swapIdentAfter(text, marker string) (string, bool) {
	i := strings.Index(text, marker)
	if i < 0 {
		return "", false
	}
	out, ok := r.swapIdent(text[i:], marker)
	if !ok {
		return "", false
	}
	return text[:i] + out, true
}

func lineEnd(raw []byte) string {
	if bytes.HasSuffix(raw, []byte("\r\n")) {
		return "\r\n"
	}
	if bytes.HasSuffix(raw, []byte("\n")) {
		return "\n"
	}
	return ""
}

// quoteIfNeeded is how pg_dump names a database in an entry's "Name:": as
// fmtId writes it, quoted when it is not a plain lower-case identifier.
// (Reserved words are quoted by pg_dump too; both forms are accepted.)
func quoteIfNeeded(s string) string {
	for i, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return pgx.Identifier{s}.Sanitize()
		}
	}
	return s
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
