package backup

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// TestDumpSQL is a small dump of db in pg_dump --create's shape (header,
// CREATE DATABASE, owner, \connect, body, trailer), for tests.
func TestDumpSQL(db, owner, body string) string {
	q := pgx.Identifier{db}.Sanitize()
	var b strings.Builder
	b.WriteString("--\n-- PostgreSQL database dump\n--\n\nSET client_encoding = 'UTF8';\n\n")
	b.WriteString("--\n-- Name: " + db + "; Type: DATABASE; Schema: -; Owner: " + owner + "\n--\n\n")
	b.WriteString("CREATE DATABASE " + q + " WITH TEMPLATE = template0 ENCODING = 'UTF8';\n\n\n")
	b.WriteString("ALTER DATABASE " + q + " OWNER TO " + pgx.Identifier{owner}.Sanitize() + ";\n\n")
	b.WriteString(ConnectLine(db) + "\n\n")
	b.WriteString(body)
	b.WriteString("\n--\n-- PostgreSQL database dump complete\n--\n\n")
	return b.String()
}
