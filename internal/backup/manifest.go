// Package backup writes and reads the plugin's backups: the Helm values of the
// deployed revision and a streamed, compressed, checksummed dump of the release's
// PostgreSQL, one folder per backup in a catalog tied to release revisions.
//
// Layout: <dir>/<namespace>/<release>/<revision>-<UTC timestamp>/
//
//	manifest.json        written last: its presence marks a complete backup
//	values.yaml          user-supplied values (helm get values -o yaml)
//	values-all.yaml      all computed values (helm get values -a -o yaml)
//	globals.sql.zst      pg_dumpall --globals-only (roles)
//	db-<name>.sql.zst    pg_dump --create <name>, one per database
//
// A backup in progress lives in "<id>.partial" and is renamed when complete.
package backup

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/opencsgs/helm-csghub/internal/readlimit"
)

// FormatVersion is bumped when the layout changes incompatibly.
const FormatVersion = 1

const (
	manifestName  = "manifest.json"
	valuesName    = "values.yaml"
	allValuesName = "values-all.yaml"
	globalsName   = "globals.sql.zst"
	partialSuffix = ".partial"
)

// Manifest describes one complete backup.
type Manifest struct {
	FormatVersion   int       `json:"formatVersion"`
	ID              string    `json:"id"`
	Release         string    `json:"release"`
	Namespace       string    `json:"namespace"`
	Revision        int       `json:"revision"`
	Chart           string    `json:"chart"`
	ChartVersion    string    `json:"chartVersion"`
	AppVersion      string    `json:"appVersion"`
	ReleaseStatus   string    `json:"releaseStatus"`
	Values          File      `json:"values"`
	AllValues       File      `json:"allValues"`
	PostgresVersion string    `json:"postgresVersion,omitempty"`
	Databases       []string  `json:"databases"`
	Dumps           []Dump    `json:"dumps"`
	DatabaseSkipped string    `json:"databaseSkipped,omitempty"` // why there is no dump
	Compression     string    `json:"compression"`
	StartedAt       time.Time `json:"startedAt"`
	FinishedAt      time.Time `json:"finishedAt"`
	PluginVersion   string    `json:"pluginVersion"`
	// Extra files added by migrations (e.g. Dataflow logs exported from MongoDB).
	Extra []File `json:"extra,omitempty"`
	// Servers are the external PostgreSQL servers dumped (global.postgresql.
	// enabled=false), one per host/port/user; empty for the built-in one.
	// Older backups have none: they are built-in backups.
	Servers []Server `json:"servers,omitempty"`
	// Encryption: the files (all but this manifest) are encrypted, and the
	// sizes and sha256 above are of the encrypted bytes (nil: plain).
	Encryption *Encryption `json:"encryption,omitempty"`
}

// isContent reports whether name is one of the backup's files the
// manifest lists (encrypted in an encrypted backup; the manifest and the
// upgrade journal are not).
func (m *Manifest) isContent(name string) bool {
	if name == m.Values.Name || name == m.AllValues.Name {
		return true
	}
	for _, d := range m.Dumps {
		if d.Name == name {
			return true
		}
	}
	return m.FindExtra(name) != nil
}

// Server is one external PostgreSQL server of a backup.
type Server struct {
	Host    string `json:"host"`
	Port    int    `json:"port"`
	User    string `json:"user"`
	SSLMode string `json:"sslmode,omitempty"`
	Version string `json:"postgresVersion"`
	// Databases dumped from this server.
	Databases []string `json:"databases"`
	// Missing are databases the release's values name that the server does not have.
	Missing []string `json:"missing,omitempty"`
	// NoRolePasswords: the user may not read pg_authid (managed services), so
	// roles were dumped with --no-role-passwords; a restore leaves existing
	// roles' passwords as they are.
	NoRolePasswords bool `json:"noRolePasswords,omitempty"`
	// Image is the client image the dumps ran in.
	Image string `json:"image,omitempty"`
}

// Key names the server as dbpod.Server.Key does: user@host:port.
func (s *Server) Key() string { return fmt.Sprintf("%s@%s:%d", s.User, s.Host, s.Port) }

// External reports whether the backup is of external PostgreSQL servers.
func (m *Manifest) External() bool { return len(m.Servers) > 0 }

// File is one file of the backup with its checksum.
type File struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// Dump is one compressed SQL dump. Database is empty for the globals.
type Dump struct {
	File
	Database string `json:"database,omitempty"`
	// RawBytes is the size of the SQL before compression.
	RawBytes int64 `json:"rawBytes"`
	// RawSHA256 is the checksum of the SQL before compression.
	RawSHA256 string `json:"rawSha256"`
	// Server is the key (user@host:port) of the external server dumped; empty
	// for the built-in database.
	Server string `json:"server,omitempty"`
	// Owner is the role owning the database, as the dump itself says
	// (ALTER DATABASE ... OWNER TO); empty in older backups. Verify and
	// restore compare it, and Database, with the dump's own header.
	Owner string `json:"owner,omitempty"`
}

// TotalRawBytes is the uncompressed size of all dumps.
func (m *Manifest) TotalRawBytes() int64 {
	var n int64
	for _, d := range m.Dumps {
		n += d.RawBytes
	}
	return n
}

// TotalBytes is the size of all dump files on disk.
func (m *Manifest) TotalBytes() int64 {
	var n int64
	for _, d := range m.Dumps {
		n += d.Bytes
	}
	return n
}

// HasDatabase reports whether the backup holds a dump of the PostgreSQL server.
func (m *Manifest) HasDatabase() bool { return len(m.Dumps) > 0 }

func readManifest(dir string) (*Manifest, error) {
	data, err := readlimit.File(filepath.Join(dir, manifestName), readlimit.Metadata)
	if err != nil {
		return nil, err
	}
	return parseManifest(data, dir)
}

// parseManifest reads the manifest of the backup at where (a folder or URL).
func parseManifest(data []byte, where string) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", where, manifestName, err)
	}
	if m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: format version %d, this plugin reads %d", where, m.FormatVersion, FormatVersion)
	}
	return &m, nil
}

// dumpFileName is the file of database db's dump.
func dumpFileName(db string) string { return "db-" + safeName(db) + ".sql.zst" }

// safeName keeps a database name usable as a file name on any OS.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
