-- Deterministic sample data for the CSGHub databases (helm-csghub tests: backup, restore, rollback).
-- Run once per database by scripts/sample-data.sh:  psql -X -d <database> -f scripts/sample-data.sql
-- Everything lives in schema "sample" so it never collides with the application's own tables.
-- Idempotent: tables are created if missing and rows inserted with fixed ids (ON CONFLICT DO NOTHING),
-- so a re-run adds nothing. Content depends only on the database name and the row number.

\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET TIME ZONE 'UTC';

SELECT current_database() AS db \gset
SELECT :'db' = 'csghub_server'        AS is_server,
       :'db' = 'csghub_portal'        AS is_portal,
       :'db' = 'csghub_casdoor'       AS is_casdoor,
       :'db' = 'csghub_temporal'      AS is_temporal,
       :'db' = 'csghub_dataflow'      AS is_dataflow,
       :'db' = 'csghub_dataflow_logs' AS is_dataflow_logs \gset

BEGIN;

CREATE SCHEMA IF NOT EXISTS sample;

-- In every database: an event log and a standalone sequence.
CREATE TABLE IF NOT EXISTS sample.events (
    id         bigserial PRIMARY KEY,
    kind       text        NOT NULL,
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO sample.events (id, kind, payload, created_at)
SELECT i,
       (ARRAY['create', 'update', 'delete', 'login'])[1 + i % 4],
       jsonb_build_object('db', :'db', 'seq', i, 'digest', md5(:'db' || ':' || i), 'tags', jsonb_build_array('t' || i % 7, 't' || i % 11)),
       timestamptz '2025-01-01 00:00:00+00' + i * interval '17 minutes'
FROM generate_series(1, 300) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.events', 'id'), (SELECT max(id) FROM sample.events));

CREATE SEQUENCE IF NOT EXISTS sample.ticket_seq START 1000;
SELECT setval('sample.ticket_seq', 4242, true);

\if :is_server
CREATE TABLE IF NOT EXISTS sample.users (
    id         serial PRIMARY KEY,
    username   text        NOT NULL UNIQUE,
    email      text        NOT NULL,
    profile    jsonb       NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO sample.users (id, username, email, profile, created_at)
SELECT i, 'user' || lpad(i::text, 4, '0'), 'user' || i || '@example.com',
       jsonb_build_object('nickname', 'User ' || i, 'roles', CASE WHEN i % 50 = 0 THEN '["admin"]'::jsonb ELSE '["user"]'::jsonb END),
       timestamptz '2024-06-01 00:00:00+00' + i * interval '3 hours'
FROM generate_series(1, 200) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.users', 'id'), (SELECT max(id) FROM sample.users));

CREATE TABLE IF NOT EXISTS sample.repositories (
    id          serial PRIMARY KEY,
    user_id     integer     NOT NULL REFERENCES sample.users (id),
    path        text        NOT NULL UNIQUE,
    repo_type   text        NOT NULL,
    description text        NOT NULL,
    metadata    jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
INSERT INTO sample.repositories (id, user_id, path, repo_type, description, metadata, created_at, updated_at)
SELECT i, 1 + i % 200, 'user' || lpad((1 + i % 200)::text, 4, '0') || '/repo-' || i,
       (ARRAY['model', 'dataset', 'space', 'code'])[1 + i % 4],
       'Sample repository ' || i || ' ' || md5('repo' || i),
       jsonb_build_object('license', (ARRAY['apache-2.0', 'mit', 'other'])[1 + i % 3], 'size_bytes', i * 1048576, 'private', i % 5 = 0),
       timestamptz '2024-07-01 00:00:00+00' + i * interval '90 minutes',
       timestamptz '2024-07-01 00:00:00+00' + i * interval '90 minutes' + (i % 30) * interval '1 day'
FROM generate_series(1, 600) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.repositories', 'id'), (SELECT max(id) FROM sample.repositories));

CREATE TABLE IF NOT EXISTS sample.downloads (
    id            bigserial PRIMARY KEY,
    repository_id integer     NOT NULL REFERENCES sample.repositories (id),
    client        text        NOT NULL,
    downloaded_at timestamptz NOT NULL
);
INSERT INTO sample.downloads (id, repository_id, client, downloaded_at)
SELECT i, 1 + i % 600, (ARRAY['git', 'sdk', 'web'])[1 + i % 3],
       timestamptz '2025-02-01 00:00:00+00' + i * interval '7 minutes'
FROM generate_series(1, 1500) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.downloads', 'id'), (SELECT max(id) FROM sample.downloads));
\endif

\if :is_portal
CREATE TABLE IF NOT EXISTS sample.settings (
    id         serial PRIMARY KEY,
    key        text        NOT NULL UNIQUE,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL
);
INSERT INTO sample.settings (id, key, value, updated_at)
SELECT i, 'setting.' || i, jsonb_build_object('enabled', i % 2 = 0, 'value', md5('setting' || i)),
       timestamptz '2025-01-15 00:00:00+00' + i * interval '1 hour'
FROM generate_series(1, 50) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.settings', 'id'), (SELECT max(id) FROM sample.settings));

CREATE TABLE IF NOT EXISTS sample.pages (
    id         serial PRIMARY KEY,
    slug       text        NOT NULL UNIQUE,
    title      text        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO sample.pages (id, slug, title, body, created_at)
SELECT i, 'page-' || i, 'Page ' || i, repeat(md5('page' || i), 1 + i % 5),
       timestamptz '2025-01-20 00:00:00+00' + i * interval '5 hours'
FROM generate_series(1, 200) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.pages', 'id'), (SELECT max(id) FROM sample.pages));
\endif

\if :is_casdoor
CREATE TABLE IF NOT EXISTS sample.organizations (
    id         serial PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    properties jsonb       NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO sample.organizations (id, name, properties, created_at)
SELECT i, 'org-' || i, jsonb_build_object('display', 'Organization ' || i, 'seats', i * 10),
       timestamptz '2024-05-01 00:00:00+00' + i * interval '1 day'
FROM generate_series(1, 10) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.organizations', 'id'), (SELECT max(id) FROM sample.organizations));

CREATE TABLE IF NOT EXISTS sample.accounts (
    id              serial PRIMARY KEY,
    organization_id integer     NOT NULL REFERENCES sample.organizations (id),
    name            text        NOT NULL,
    password_hash   text        NOT NULL,
    properties      jsonb       NOT NULL,
    created_at      timestamptz NOT NULL,
    UNIQUE (organization_id, name)
);
INSERT INTO sample.accounts (id, organization_id, name, password_hash, properties, created_at)
SELECT i, 1 + i % 10, 'account' || i, md5('password' || i),
       jsonb_build_object('phone', '+1555' || lpad(i::text, 7, '0'), 'mfa', i % 3 = 0),
       timestamptz '2024-05-15 00:00:00+00' + i * interval '2 hours'
FROM generate_series(1, 200) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.accounts', 'id'), (SELECT max(id) FROM sample.accounts));
\endif

\if :is_temporal
CREATE TABLE IF NOT EXISTS sample.executions (
    id          bigserial PRIMARY KEY,
    workflow_id text        NOT NULL UNIQUE,
    state       text        NOT NULL,
    history     jsonb       NOT NULL,
    started_at  timestamptz NOT NULL,
    closed_at   timestamptz
);
INSERT INTO sample.executions (id, workflow_id, state, history, started_at, closed_at)
SELECT i, 'wf-' || md5('wf' || i), (ARRAY['running', 'completed', 'failed'])[1 + i % 3],
       jsonb_build_object('events', i % 40, 'task_queue', 'queue-' || i % 4),
       timestamptz '2025-03-01 00:00:00+00' + i * interval '11 minutes',
       CASE WHEN i % 3 = 0 THEN NULL ELSE timestamptz '2025-03-01 00:00:00+00' + i * interval '11 minutes' + interval '5 minutes' END
FROM generate_series(1, 500) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.executions', 'id'), (SELECT max(id) FROM sample.executions));
\endif

\if :is_dataflow
CREATE TABLE IF NOT EXISTS sample.jobs (
    id         serial PRIMARY KEY,
    name       text        NOT NULL,
    status     text        NOT NULL,
    config     jsonb       NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO sample.jobs (id, name, status, config, created_at)
SELECT i, 'job-' || i, (ARRAY['pending', 'running', 'succeeded', 'failed'])[1 + i % 4],
       jsonb_build_object('operators', jsonb_build_array('dedup', 'filter-' || i % 5), 'parallelism', 1 + i % 8),
       timestamptz '2025-04-01 00:00:00+00' + i * interval '23 minutes'
FROM generate_series(1, 400) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.jobs', 'id'), (SELECT max(id) FROM sample.jobs));
\endif

\if :is_dataflow_logs
CREATE TABLE IF NOT EXISTS sample.task_logs (
    id        bigserial PRIMARY KEY,
    job_id    integer     NOT NULL,
    level     text        NOT NULL,
    message   text        NOT NULL,
    fields    jsonb       NOT NULL,
    logged_at timestamptz NOT NULL
);
INSERT INTO sample.task_logs (id, job_id, level, message, fields, logged_at)
SELECT i, 1 + i % 400, (ARRAY['INFO', 'WARN', 'ERROR', 'DEBUG'])[1 + i % 4],
       'step ' || i % 25 || ' processed ' || i * 3 || ' records',
       jsonb_build_object('worker', 'w' || i % 6, 'elapsed_ms', i % 997),
       timestamptz '2025-04-02 00:00:00+00' + i * interval '13 seconds'
FROM generate_series(1, 2000) AS i
ON CONFLICT (id) DO NOTHING;
SELECT setval(pg_get_serial_sequence('sample.task_logs', 'id'), (SELECT max(id) FROM sample.task_logs));
\endif

COMMIT;
