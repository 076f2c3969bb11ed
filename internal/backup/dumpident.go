package backup

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// headKeep bounds how much of a dump's start is kept to read its identity:
// pg_dump --create writes the database's entry (CREATE DATABASE, owner,
// \connect) after a few hundred bytes of SET lines.
const headKeep = 64 << 10

// DumpIdentity is what a `pg_dump --create` dump says about itself: the
// database it creates and the role that owns it.
type DumpIdentity struct {
	Database string
	Owner    string
}

// ParseDumpHead reads the identity of a database dump from its start: the
// DATABASE entry's header (`-- Name: X; Type: DATABASE; ...; Owner: O`), its
// `CREATE DATABASE X`, `ALTER DATABASE X OWNER TO O` and the `\connect X`
// that follows. All of them must agree: a dump whose parts name different
// databases or owners is not one pg_dump wrote.
func ParseDumpHead(head []byte) (DumpIdentity, error) {
	var id DumpIdentity
	var headerName, headerOwner, created, owner string
	sc := bufio.NewScanner(bytes.NewReader(head))
	sc.Buffer(make([]byte, 0, 4096), headKeep)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if t, ok := TOCEntryOf(line); ok && t.Type == "DATABASE" && headerName == "" {
			headerName, headerOwner = t.Name, t.Owner
			continue
		}
		if rest, ok := strings.CutPrefix(line, "CREATE DATABASE "); ok && created == "" {
			name, _, ok := ParseIdent(rest)
			if !ok {
				return id, fmt.Errorf("dump: cannot read the database name in %q", clip(line))
			}
			created = name
			continue
		}
		if rest, ok := strings.CutPrefix(line, "ALTER DATABASE "); ok && created != "" && owner == "" {
			name, tail, ok := ParseIdent(rest)
			if ok && name == created {
				if o, ok := strings.CutPrefix(tail, " OWNER TO "); ok {
					if oname, end, ok := ParseIdent(o); ok && end == ";" {
						owner = oname
					}
				}
			}
			continue
		}
		if target, ok := ConnectTarget(line); ok {
			if created == "" {
				return id, fmt.Errorf("dump connects to database %q before creating one (not a pg_dump --create dump)", target)
			}
			if target != created {
				return id, fmt.Errorf("dump creates database %q but connects to %q", created, target)
			}
			if headerName != created {
				return id, fmt.Errorf("dump's DATABASE entry names %q but it creates %q", headerName, created)
			}
			if owner != "" && headerOwner != owner {
				return id, fmt.Errorf("dump's DATABASE entry says owner %q but it sets owner %q", headerOwner, owner)
			}
			if owner == "" {
				owner = headerOwner
			}
			return DumpIdentity{Database: created, Owner: owner}, nil
		}
	}
	if created == "" {
		return id, fmt.Errorf("dump has no CREATE DATABASE in its first %d KiB (not a pg_dump --create dump)", headKeep>>10)
	}
	return id, fmt.Errorf("dump creates database %q but never connects to it in its first %d KiB", created, headKeep>>10)
}

// CheckIdentity compares a dump's identity with the manifest's record of it.
func (d Dump) CheckIdentity(id DumpIdentity) error {
	if id.Database != d.Database {
		return fmt.Errorf("the dump is of database %q, the manifest says %q", id.Database, d.Database)
	}
	if d.Owner != "" && id.Owner != d.Owner {
		return fmt.Errorf("database %s in the dump is owned by %q, the manifest says %q", d.Database, id.Owner, d.Owner)
	}
	return nil
}

// TOCEntry is the comment pg_dump writes before each object of a plain dump:
//
//	-- Name: csghub_server; Type: DATABASE; Schema: -; Owner: csghub
//	-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: csghub
type TOCEntry struct {
	Name, Type, Owner string
}

// TOCEntryOf parses such a line.
func TOCEntryOf(line string) (TOCEntry, bool) {
	rest, ok := strings.CutPrefix(line, "-- Name: ")
	if !ok {
		if rest, ok = strings.CutPrefix(line, "-- Data for Name: "); !ok {
			return TOCEntry{}, false
		}
	}
	// the name may hold "; " itself: the fields are read from the right
	i := strings.LastIndex(rest, "; Type: ")
	if i < 0 {
		return TOCEntry{}, false
	}
	t := TOCEntry{Name: rest[:i]}
	for _, f := range strings.Split(rest[i+2:], "; ") {
		k, v, _ := strings.Cut(f, ": ")
		switch k {
		case "Type":
			t.Type = v
		case "Owner":
			t.Owner = v
		}
	}
	return t, t.Type != ""
}

// ParseIdent reads one SQL identifier at the start of s, as pg_dump writes it
// (bare, or double-quoted with "" for a quote), and returns it with the rest
// of s. A bare identifier is folded to lower case as the server does.
func ParseIdent(s string) (name, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String(), s[i+1:], b.Len() > 0
		}
		return "", s, false
	}
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80 || i > 0 && (c >= '0' && c <= '9' || c == '$') {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return "", s, false
	}
	return strings.ToLower(s[:i]), s[i:], true
}

// ConnectTarget reads the database of a psql `\connect` line as pg_dump
// writes it: `\connect name` or, for a name with other characters,
// `\connect -reuse-previous=on "dbname='na”me'"`.
func ConnectTarget(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, `\connect `)
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if arg, ok := strings.CutPrefix(rest, "-reuse-previous=on "); ok {
		connstr, tail, ok := ParseIdent(arg) // psql reads "..." like an identifier, "" for "
		if !ok || !strings.HasPrefix(arg, `"`) || tail != "" {
			return "", false
		}
		val, ok := strings.CutPrefix(connstr, "dbname=")
		if !ok {
			return "", false
		}
		return unquoteConnValue(val)
	}
	if strings.ContainsAny(rest, " '\"=") {
		return "", false
	}
	return rest, rest != ""
}

// unquoteConnValue undoes libpq's quoting of a connection string value:
// 'text' with \' and \\ escapes (pg_dump always quotes).
func unquoteConnValue(v string) (string, bool) {
	if len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
		return v, v != "" && !strings.ContainsAny(v, ` '\`)
	}
	var b strings.Builder
	for i := 1; i < len(v)-1; i++ {
		if v[i] == '\\' && i+1 < len(v)-1 {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String(), true
}

// ConnectLine is the psql line that connects to db, as pg_dump writes it: a
// plain name when it is only letters, digits, '_' and '.', else a quoted
// connection string (psql would read "a=b" as one).
func ConnectLine(db string) string {
	simple := db != ""
	for _, c := range []byte(db) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			simple = false
		}
	}
	if simple {
		return `\connect ` + db
	}
	v := strings.ReplaceAll(strings.ReplaceAll(db, `\`, `\\`), `'`, `\'`)
	return `\connect -reuse-previous=on "` + strings.ReplaceAll("dbname='"+v+"'", `"`, `""`) + `"`
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}
