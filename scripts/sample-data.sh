#!/usr/bin/env bash
# Fill the CSGHub databases with deterministic sample data, or print a checksum of that data.
#
# Usage: scripts/sample-data.sh [load|checksum]        (default: load)
#   load      create schema "sample" and its rows in every CSGHub database that exists
#             (scripts/sample-data.sql; idempotent: a re-run adds nothing)
#   checksum  print "<database> <object> <rows> <md5>" lines (sorted) for the sample data, so a test
#             can compare them before a backup and after a restore/rollback
#
# Connection: standard libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE, ...).
# Environment:
#   SAMPLE_DATABASES  space-separated databases to consider (default: the CSGHub chart's databases);
#                     those that do not exist are skipped
#   SAMPLE_ADMIN_DB   database used to list databases (default: postgres, falling back to template1)
#   PSQL              psql binary (default: psql)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sql_file=$here/sample-data.sql
psql_bin=${PSQL:-psql}
mode=${1:-load}
default_dbs="csghub_server csghub_portal csghub_casdoor csghub_temporal csghub_dataflow csghub_dataflow_logs
csghub_label_studio csghub_csgship csghub_xnet"
read -r -d '' -a wanted <<<"${SAMPLE_DATABASES:-$default_dbs}" || true

die() { echo "sample-data: $*" >&2; exit 1; }

case $mode in
  load | checksum) ;;
  -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown mode '$mode' (expected load or checksum)" ;;
esac
command -v "$psql_bin" >/dev/null || die "psql not found (set PSQL)"
[[ -r $sql_file ]] || die "missing $sql_file"
((${#wanted[@]})) || die "SAMPLE_DATABASES is empty"

# -X: ignore ~/.psqlrc; UTC so timestamps (and checksums) print the same everywhere
export PGTZ=UTC PGAPPNAME=csghub-sample-data
psql_q() { "$psql_bin" -X -q -v ON_ERROR_STOP=1 "$@"; }

admin_db=${SAMPLE_ADMIN_DB:-}
if [[ -z $admin_db ]]; then
  admin_db=postgres
  psql_q -d "$admin_db" -tAc 'SELECT 1' >/dev/null 2>&1 || admin_db=template1
fi

# Databases that exist, in the order asked for (names are passed as one array literal, quoted by psql).
list=$(printf '%s,' "${wanted[@]}")
existing=$(psql_q -d "$admin_db" -tA -v "names={${list%,}}" <<'SQL'
SELECT d.name FROM unnest(:'names'::text[]) WITH ORDINALITY AS d(name, n)
JOIN pg_database p ON p.datname = d.name ORDER BY d.n;
SQL
) || die "cannot list databases through '$admin_db' (check PGHOST/PGPORT/PGUSER/PGPASSWORD)"
[[ -n $existing ]] || die "none of these databases exist: ${wanted[*]}"

if [[ $mode == load ]]; then
  for db in $existing; do
    start=$(date +%s%N)
    psql_q -d "$db" -f "$sql_file" >/dev/null || die "loading $db failed"
    echo "sample-data: loaded $db ($(( ($(date +%s%N) - start) / 1000000 )) ms)" >&2
  done
  exit 0
fi

# checksum: every table of schema "sample" (rows + md5 of the rows in id order) and every sequence.
for db in $existing; do
  psql_q -d "$db" -tA -F ' ' -v db="$db" <<'SQL' || die "checksum of $db failed"
SELECT to_regnamespace('sample') IS NOT NULL AS has_sample \gset
\if :has_sample
SELECT format('SELECT %L, %L, count(*), coalesce(md5(string_agg(t::text, %L ORDER BY t.id)), %L) FROM sample.%I t',
              :'db', 'table:' || c.relname, E'\n', '-', c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'sample' AND c.relkind = 'r' ORDER BY c.relname \gexec
SELECT format('SELECT %L, %L, last_value, md5(last_value::text || is_called::text) FROM sample.%I',
              :'db', 'sequence:' || c.relname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'sample' AND c.relkind = 'S' ORDER BY c.relname \gexec
\else
SELECT :'db', 'schema:sample', 0, '-';
\endif
SQL
done | sort
