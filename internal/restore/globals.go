package restore

import (
	"bufio"
	"io"
	"strings"
)

// globalsFilter makes pg_dumpall --globals-only output replayable into a live
// server: it emits `CREATE ROLE x;` for every role, including ones that exist
// (always the superuser it runs as), which would stop psql at its first error.
// Each such line becomes a block that ignores duplicate_object; the following
// `ALTER ROLE x WITH ...` still sets every attribute and the password hash
// exactly as backed up.
func globalsFilter(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		bw := bufio.NewWriter(pw)
		for sc.Scan() {
			bw.WriteString(rewriteCreateRole(sc.Text()))
			bw.WriteByte('\n')
		}
		err := sc.Err()
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func rewriteCreateRole(line string) string {
	if !strings.HasPrefix(line, "CREATE ROLE ") || !strings.HasSuffix(line, ";") {
		return line
	}
	tag := "$role$"
	for i := 0; strings.Contains(line, tag); i++ {
		tag = "$role" + strings.Repeat("x", i+1) + "$"
	}
	return "DO " + tag + " BEGIN " + line + " EXCEPTION WHEN duplicate_object THEN NULL; END " + tag + ";"
}
