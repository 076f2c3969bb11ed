package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"filippo.io/age"
	"github.com/spf13/pflag"

	"github.com/opencsgs/helm-csghub/internal/backup"
	"github.com/opencsgs/helm-csghub/internal/errs"
	"github.com/opencsgs/helm-csghub/internal/steplog"
)

// output is the --output flag: "table" for people, "json" for scripts.
type output string

const (
	outputTable output = "table"
	outputJSON  output = "json"
)

func (o *output) bind(fs *pflag.FlagSet) {
	*o = outputTable
	fs.VarP(o, "output", "o", "output format: table or json")
}

func (o *output) String() string { return string(*o) }
func (o *output) Type() string   { return "format" }
func (o *output) Set(s string) error {
	switch output(s) {
	case outputTable, outputJSON:
		*o = output(s)
		return nil
	}
	return errs.Usagef("must be table or json")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer) *table { return &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)} }

// row writes one line: a cell with line breaks or tabs (a Helm revision's
// description, a server's message) is made one line, or it would break the
// table's rows and columns.
func (t *table) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		s := fmt.Sprint(c)
		if strings.ContainsAny(s, "\n\r\t") {
			s = steplog.OneLine(strings.NewReplacer("\r", "\n", "\t", " ").Replace(s))
		}
		fmt.Fprint(t.tw, s)
	}
	fmt.Fprintln(t.tw)
}

func (t *table) flush() error { return t.tw.Flush() }

// print writes v as JSON for scripts, or calls table for people.
func (a *App) print(o output, v any, table func(w io.Writer)) error {
	if o == outputJSON {
		return writeJSON(a.Stdout, v)
	}
	table(a.Stdout)
	return nil
}

// catalogDir is the --backup-location and --dir flags of every command
// that reads or writes the backup catalog.
type catalogDir struct {
	location, dir string
	identity      string // --identity, on the commands that read backups' content
	resolved      string
}

// bindIdentity adds --identity: the age private key(s) that open an
// encrypted backup (a file: a key never goes on the command line).
func (d *catalogDir) bindIdentity(fs *pflag.FlagSet) {
	fs.StringVar(&d.identity, "identity", "", "file of age private keys opening encrypted backups (default $"+backup.IdentityFileEnv+", or the key in $"+backup.IdentityEnv+")")
}

func (d *catalogDir) bind(fs *pflag.FlagSet) {
	fs.StringVar(&d.location, "backup-location", "", "where backups are: a folder, or s3://BUCKET/PREFIX (default $"+backup.LocationEnv+", else --dir)")
	fs.StringVar(&d.dir, "dir", "", "backup catalog folder (default $HELM_DATA_HOME/csghub/backups)")
}

// encryptFlags encrypt a backup to age recipients (--encrypt-to).
type encryptFlags struct{ to []string }

func (f *encryptFlags) bind(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.to, "encrypt-to", nil, "encrypt the backup to an age public key (age1...) or a file of them; repeatable")
}

// recipients parses the flag (nil: no encryption).
func (f *encryptFlags) recipients() ([]age.Recipient, error) {
	if len(f.to) == 0 {
		return nil, nil
	}
	r, _, err := backup.ParseRecipients(f.to)
	return r, err
}

// writeSettings checks the flags of a command that writes a new backup
// (backup, upgrade): the location, server-side encryption for it, and the
// age recipients (nil: no client-side encryption).
func writeSettings(dir *catalogDir, sse *sseFlags, enc *encryptFlags) ([]age.Recipient, error) {
	if err := dir.resolve(); err != nil {
		return nil, err
	}
	if err := backup.CheckSSE(sse.sse, dir.loc()); err != nil {
		return nil, err
	}
	return enc.recipients()
}

// sseFlags ask a bucket location to encrypt what a command writes.
type sseFlags struct{ sse backup.SSE }

func (f *sseFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.sse.Mode, "sse", "", "server-side encryption of a bucket location: "+backup.SSES3+" (SSE-S3) or "+backup.SSEKMS+" (SSE-KMS)")
	fs.StringVar(&f.sse.KMSKeyID, "sse-kms-key-id", "", "the KMS key of --sse "+backup.SSEKMS+" (default: the service's default key)")
}

// resolve checks the flags and the environment (a usage error, exit 2, for
// an unknown scheme or a malformed URL); every command calls it first.
func (d *catalogDir) resolve() error {
	loc, err := backup.ResolveLocation(d.location, d.dir)
	d.resolved = loc
	if d.identity != "" {
		backup.UseIdentityFile(d.identity)
	}
	return err
}

// loc is the resolved location: a folder, an s3:// URL, or "" (the default folder).
func (d *catalogDir) loc() string { return d.resolved }

// catalog is the catalog the flags name (the default folder when not given).
func (d *catalogDir) catalog() backup.Catalog { return backup.CatalogAt(d.resolved) }
