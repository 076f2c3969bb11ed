#!/usr/bin/env bash
# gen-db.sh - fill a PostgreSQL server with SIZE_MB MiB of realistic CSGHub-like rows, for benchmarks.
#
# Usage: scripts/bench/gen-db.sh [SIZE_MB]          (default 1024)
#
# Rows go to schema "bench" of csghub_server (users, repositories, repository_files, audit_events),
# csghub_dataflow (tasks) and csghub_casdoor (tokens); missing databases are created. Text, jsonb,
# integers and timestamps are generated server-side with generate_series (no data crosses the
# client), deterministically from the row number, with word-like text that compresses like real SQL
# dumps. SIZE_MB counts table data (heap + TOAST, what a dump contains), not indexes. Idempotent:
# schema "bench" is dropped and rebuilt, so a re-run gives the same data.
#
# Connection: the standard libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, ...); the user must
# be allowed to create databases and schemas.
# Environment:
#   GEN_DB_JOBS  tables filled at once (default 2)
#   PSQL         psql binary (default: psql)
# Output: one line per database on stdout: its size on disk and the size of the generated rows;
# progress on stderr.
set -euo pipefail

size_mb=${1:-1024}
jobs_max=${GEN_DB_JOBS:-2}
psql_bin=${PSQL:-psql}

log() { printf '%s gen-db: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! [[ $size_mb =~ ^[1-9][0-9]*$ ]]; then die "SIZE_MB must be a positive integer, got '$size_mb'"; fi
if ! [[ $jobs_max =~ ^[1-9][0-9]*$ ]]; then die "GEN_DB_JOBS must be a positive integer, got '$jobs_max'"; fi
command -v "$psql_bin" >/dev/null || die "psql not found (set PSQL)"

# -X: no ~/.psqlrc; UTC so generated timestamps print the same everywhere
export PGTZ=UTC PGAPPNAME=csghub-bench-gen-db
psql_q() { "$psql_bin" -X -q -v ON_ERROR_STOP=1 "$@"; }

databases=(csghub_server csghub_dataflow csghub_casdoor)
# db:table:share of SIZE_MB in percent, biggest first (they are filled in this order)
specs=(
  csghub_server:audit_events:30
  csghub_server:repository_files:28
  csghub_dataflow:tasks:15
  csghub_server:repositories:12
  csghub_casdoor:tokens:10
  csghub_server:users:5
)

# The vocabulary text is built once per database as an immutable SQL function (folded to a constant
# by the planner); row text is a window into it at a row-dependent offset.
setup_sql() {
  cat <<'SQL'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
CREATE FUNCTION bench.lorem() RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
  SELECT string_agg(w[1 + ((hashint4(i)::bigint % cardinality(w)) + cardinality(w)) % cardinality(w)], ' ' ORDER BY i)
  FROM generate_series(1, 4000) AS i,
       (SELECT ARRAY['model', 'dataset', 'training', 'inference', 'the', 'a', 'of', 'for', 'with', 'and',
                     'transformer', 'llama', 'qwen', 'fine-tune', 'token', 'batch', 'gpu', 'checkpoint',
                     'evaluation', 'accuracy', 'latency', 'deploy', 'space', 'repository', 'commit', 'branch',
                     'license', 'apache', 'chinese', 'english', 'text', 'image', 'audio', 'video',
                     'classification', 'generation', 'embedding', 'vector', 'prompt', 'response', 'user',
                     'organization', 'mirror', 'sync', 'upload', 'download', 'weights', 'safetensors', 'config',
                     'tokenizer', 'parameters', 'billion', 'quantized', 'int8', 'fp16', 'bf16', 'layer',
                     'attention', 'head', 'context', 'window', 'benchmark', 'score', 'release', 'version',
                     'update', 'fix', 'add', 'remove', 'support', 'improve', 'performance', 'data', 'pipeline',
                     'job', 'task', 'queue', 'worker', 'node', 'cluster', 'storage', 'object', 'bucket',
                     'endpoint', 'serverless', 'runtime', 'docker', 'build', 'log', 'error', 'warning', 'info',
                     'success', 'failed', 'running', 'pending', 'is', 'to', 'in', 'on', 'this', 'that']) AS v(w)
$fn$;
-- words(seed, len): len characters of word text starting at a seed-dependent offset
CREATE FUNCTION bench.words(seed bigint, len int) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
  SELECT substr(bench.lorem(), 1 + (seed * 7919 % 20000)::int, len)
$fn$;
SQL
}

create_sql() {
  case $1 in
    users) echo "CREATE TABLE bench.users (id bigint NOT NULL, username text NOT NULL, email text NOT NULL,
        nickname text, bio text, profile jsonb NOT NULL, created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL, deleted_at timestamptz);" ;;
    repositories) echo "CREATE TABLE bench.repositories (id bigint NOT NULL, user_id bigint NOT NULL,
        repository_type text NOT NULL, path text NOT NULL, name text NOT NULL, description text,
        license text, tags jsonb NOT NULL, downloads integer NOT NULL, likes integer NOT NULL,
        private boolean NOT NULL, default_branch text NOT NULL, created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL);" ;;
    repository_files) echo "CREATE TABLE bench.repository_files (id bigint NOT NULL,
        repository_id bigint NOT NULL, path text NOT NULL, sha text NOT NULL, size bigint NOT NULL,
        lfs boolean NOT NULL, content text, last_commit_message text, updated_at timestamptz NOT NULL);" ;;
    audit_events) echo "CREATE TABLE bench.audit_events (id bigint NOT NULL, user_id bigint NOT NULL,
        action text NOT NULL, resource text NOT NULL, client_ip text NOT NULL, user_agent text NOT NULL,
        status integer NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL);" ;;
    tasks) echo "CREATE TABLE bench.tasks (id bigint NOT NULL, name text NOT NULL, status text NOT NULL,
        job_type text NOT NULL, config jsonb NOT NULL, log text, duration_ms integer,
        started_at timestamptz NOT NULL, finished_at timestamptz);" ;;
    tokens) echo "CREATE TABLE bench.tokens (id bigint NOT NULL, owner text NOT NULL, name text NOT NULL,
        application text NOT NULL, organization text NOT NULL, username text NOT NULL, code text NOT NULL,
        access_token text NOT NULL, refresh_token text NOT NULL, expires_in integer NOT NULL,
        scope text NOT NULL, token_type text NOT NULL, extra jsonb NOT NULL, created_time timestamptz NOT NULL);" ;;
    *) die "unknown table $1" ;;
  esac
}

# insert_sql TABLE: rows :lo..:hi (psql variables)
insert_sql() {
  local t0="timestamptz '2023-01-01 00:00:00+00'"
  case $1 in
    users) cat <<SQL
INSERT INTO bench.users
SELECT g, 'user_' || g, 'user' || g || '@example.' || (ARRAY['com', 'org', 'cn', 'io'])[1 + g % 4],
       initcap(bench.words(g * 3, 8 + (g % 12)::int)), bench.words(g, 60 + (g % 200)::int),
       jsonb_build_object('roles', CASE WHEN g % 50 = 0 THEN '["admin","user"]'::jsonb ELSE '["user"]'::jsonb END,
                          'phone', '+86 1' || lpad((g * 7919 % 1000000000)::text, 10, '0'),
                          'avatar', 'https://cdn.example.com/avatars/' || md5(g::text) || '.png',
                          'verified', g % 3 <> 0, 'locale', (ARRAY['zh-CN', 'en-US'])[1 + g % 2]),
       $t0 + g * interval '97 seconds', $t0 + g * interval '97 seconds' + (g % 400) * interval '1 day',
       CASE WHEN g % 97 = 0 THEN $t0 + g * interval '97 seconds' + interval '500 days' END
FROM generate_series(:lo::bigint, :hi::bigint) AS g;
SQL
    ;;
    repositories) cat <<SQL
INSERT INTO bench.repositories
SELECT g, 1 + g % 60000, (ARRAY['model', 'dataset', 'code', 'space', 'mcp'])[1 + g % 5],
       'user_' || (1 + g % 60000) || '/' || replace(bench.words(g * 5, 10 + (g % 14)::int), ' ', '-') || '-' || g,
       replace(bench.words(g * 5, 10 + (g % 14)::int), ' ', '-'), bench.words(g, 150 + (g % 500)::int),
       (ARRAY['apache-2.0', 'mit', 'llama3', 'cc-by-4.0', 'other'])[1 + g % 5],
       jsonb_build_array(bench.words(g * 11, 9), bench.words(g * 13, 7), (ARRAY['pytorch', 'onnx', 'gguf'])[1 + g % 3]),
       (g * 7919 % 2000000)::int, (g * 104729 % 5000)::int, g % 9 = 0, (ARRAY['main', 'master'])[1 + g % 2],
       $t0 + g * interval '41 seconds', $t0 + g * interval '41 seconds' + (g % 300) * interval '1 hour'
FROM generate_series(:lo::bigint, :hi::bigint) AS g;
SQL
    ;;
    repository_files) cat <<SQL
INSERT INTO bench.repository_files
SELECT g, 1 + g % 400000,
       (ARRAY['README.md', 'config.json', 'tokenizer.json', 'model-00001-of-00004.safetensors', 'data/train-' || g % 64 || '.parquet', 'app.py'])[1 + g % 6],
       md5(g::text) || substr(md5((g * 31)::text), 1, 8), (g * 104729 % 10000000000)::bigint, g % 6 = 3,
       CASE WHEN g % 6 IN (0, 1, 2, 5) THEN bench.words(g, 300 + (g % 900)::int) END,
       (ARRAY['Upload', 'Update', 'Add', 'Fix'])[1 + g % 4] || ' ' || bench.words(g * 17, 20 + (g % 60)::int),
       $t0 + g * interval '23 seconds'
FROM generate_series(:lo::bigint, :hi::bigint) AS g;
SQL
    ;;
    audit_events) cat <<SQL
INSERT INTO bench.audit_events
SELECT g, 1 + g % 60000, (ARRAY['login', 'create', 'update', 'delete', 'download', 'push'])[1 + g % 6],
       '/api/v1/' || (ARRAY['models', 'datasets', 'spaces', 'codes'])[1 + g % 4] || '/user_' || (1 + g % 60000) || '/repo-' || g % 400000,
       '10.' || g % 256 || '.' || (g / 256) % 256 || '.' || (g / 65536) % 256,
       (ARRAY['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
              'git/2.43.0', 'csghub-sdk/0.4.2 python/3.11', 'curl/8.5.0'])[1 + g % 4],
       (ARRAY[200, 200, 200, 201, 204, 403, 404, 500])[1 + g % 8],
       jsonb_build_object('request_id', md5(g::text), 'method', (ARRAY['GET', 'POST', 'PUT', 'DELETE'])[1 + g % 4],
                          'latency_ms', g * 7 % 3000, 'params', jsonb_build_object('page', g % 50, 'per', 20, 'sort', 'trending'),
                          'headers', jsonb_build_object('accept', 'application/json', 'x-forwarded-for', '192.168.' || g % 256 || '.1'),
                          'detail', bench.words(g, 120 + (g % 250)::int)),
       $t0 + g * interval '3 seconds'
FROM generate_series(:lo::bigint, :hi::bigint) AS g;
SQL
    ;;
    tasks) cat <<SQL
INSERT INTO bench.tasks
SELECT g, 'task-' || g || '-' || replace(bench.words(g * 7, 14), ' ', '_'),
       (ARRAY['finished', 'finished', 'failed', 'running', 'pending'])[1 + g % 5],
       (ARRAY['data_refine', 'data_generation', 'data_analysis', 'pipeline'])[1 + g % 4],
       jsonb_build_object('repo_id', 'user_' || g % 60000 || '/dataset-' || g, 'branch', 'main',
                          'ops', jsonb_build_array(jsonb_build_object('name', 'clean_html', 'args', jsonb_build_object('keep_links', g % 2 = 0)),
                                                   jsonb_build_object('name', 'dedup', 'args', jsonb_build_object('threshold', 0.85)),
                                                   jsonb_build_object('name', 'filter_length', 'args', jsonb_build_object('min', 10, 'max', 20000))),
                          'resources', jsonb_build_object('cpu', 1 + g % 8, 'memory', (1 + g % 16) || 'Gi')),
       'INFO ' || bench.words(g, 400 + (g % 1000)::int) || E'\nDONE',
       CASE WHEN g % 5 IN (3, 4) THEN NULL ELSE (g * 7919 % 3600000)::int END,
       $t0 + g * interval '61 seconds',
       CASE WHEN g % 5 IN (3, 4) THEN NULL ELSE $t0 + g * interval '61 seconds' + (g % 3600) * interval '1 second' END
FROM generate_series(:lo::bigint, :hi::bigint) AS g;
SQL
    ;;
    tokens) cat <<SQL
INSERT INTO bench.tokens
SELECT g, 'built-in', 'token-' || g, 'app-csghub', 'OpenCSG', 'user_' || (1 + g % 60000), md5('code' || g),
       md5('a' || g) || md5('b' || g) || md5('c' || g) || md5('d' || g), md5('r' || g) || md5('s' || g),
       (ARRAY[3600, 86400, 604800])[1 + g % 3], 'read write profile', 'Bearer',
       jsonb_build_object('client_ip', '10.1.' || g % 256 || '.' || g % 200, 'grant', 'authorization_code',
                          'note', bench.words(g, 30 + (g % 90)::int)),
       $t0 + g * interval '13 seconds'
FROM generate_series(:lo::bigint, :hi::bigint) AS g;
SQL
    ;;
    *) die "unknown table $1" ;;
  esac
}

# finish_sql TABLE: keys and indexes after the load (faster than maintaining them row by row), then
# VACUUM so that hint bits are set and the first dump does not pay for writing them
finish_sql() {
  local t=$1
  echo "ALTER TABLE bench.$t ADD PRIMARY KEY (id);"
  case $t in
    users) echo "CREATE UNIQUE INDEX ON bench.users (username);" ;;
    repositories) echo "CREATE INDEX ON bench.repositories (user_id);" ;;
    repository_files) echo "CREATE INDEX ON bench.repository_files (repository_id);" ;;
    audit_events) echo "CREATE INDEX ON bench.audit_events (created_at);" ;;
    tasks) echo "CREATE INDEX ON bench.tasks (status);" ;;
    tokens) echo "CREATE INDEX ON bench.tokens (username);" ;;
  esac
  echo "VACUUM (FREEZE, ANALYZE) bench.$t;"
}

# fill DB TABLE SHARE: insert batches until the table holds SHARE% of SIZE_MB; the batch size is
# re-estimated from the bytes per row measured so far
fill() {
  local db=$1 t=$2 share=$3 target rows=0 size=0 batch=2000 bpr need cap t_start=$SECONDS
  target=$((size_mb * 1048576 * share / 100))
  create_sql "$t" | psql_q -d "$db"
  while ((size < target)); do
    insert_sql "$t" | psql_q -d "$db" -v lo=$((rows + 1)) -v hi=$((rows + batch)) ||
      die "inserting into $db bench.$t failed"
    rows=$((rows + batch))
    size=$(psql_q -d "$db" -tAc "SELECT pg_table_size('bench.$t')")
    bpr=$(((size + rows - 1) / rows))
    need=$(((target - size + bpr - 1) / bpr))
    cap=$((128 * 1048576 / bpr)) # about 128 MiB per statement
    batch=$((need < cap ? need : cap))
    batch=$((batch < 1000 ? 1000 : batch))
  done
  finish_sql "$t" | psql_q -d "$db" || die "indexing $db bench.$t failed"
  log "$db bench.$t: $rows rows, $((size / 1048576)) MiB ($((SECONDS - t_start))s)"
}

# --- databases and schemas (serially: concurrent CREATE SCHEMA would collide)
admin_db=postgres
psql_q -d "$admin_db" -tAc 'SELECT 1' >/dev/null 2>&1 || admin_db=template1
psql_q -d "$admin_db" -tAc 'SELECT 1' >/dev/null ||
  die "cannot connect to PostgreSQL (check PGHOST/PGPORT/PGUSER/PGPASSWORD)"
for db in "${databases[@]}"; do
  exists=$(psql_q -d "$admin_db" -tA -v db="$db" <<<"SELECT count(*) FROM pg_database WHERE datname = :'db';")
  if [[ $exists == 0 ]]; then
    log "creating database $db"
    psql_q -d "$admin_db" -v db="$db" <<<'CREATE DATABASE :"db";'
  fi
  setup_sql | psql_q -d "$db" || die "preparing schema bench in $db failed"
done

# --- tables, GEN_DB_JOBS at a time; any failure stops the others
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "generating ${size_mb} MiB of rows (${jobs_max} tables at a time)"
t_all=$SECONDS
running=0
for spec in "${specs[@]}"; do
  IFS=: read -r db t share <<<"$spec"
  if ((running >= jobs_max)); then
    wait -n || die "a table failed to load (see above)"
    running=$((running - 1))
  fi
  fill "$db" "$t" "$share" &
  pids+=($!)
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || die "a table failed to load (see above)"
  running=$((running - 1))
done
pids=()
for db in "${databases[@]}"; do
  psql_q -d "$db" -c 'DROP FUNCTION bench.words(bigint, int); DROP FUNCTION bench.lorem();'
done
log "generated in $((SECONDS - t_all))s"

# --- sizes
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
printf '%-22s %12s %14s\n' DATABASE 'SIZE (MiB)' 'ROWS (MiB)'
total_db=0 total_rows=0
for db in $(psql_q -d "$admin_db" -tAc "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname"); do
  read -r dbsize rowsize < <(psql_q -d "$db" -tA -F ' ' -c "SELECT pg_database_size(current_database()),
      coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'bench' AND c.relkind = 'r'")
  printf '%-22s %12s %14s\n' "$db" "$(mib "$dbsize")" "$(mib "$rowsize")"
  total_db=$((total_db + dbsize))
  total_rows=$((total_rows + rowsize))
done
printf '%-22s %12s %14s\n' TOTAL "$(mib "$total_db")" "$(mib "$total_rows")"
