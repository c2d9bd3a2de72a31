-- A wide table of mixed types, 20,000 rows, about 10% NULLs in every nullable column (each
-- column has its own NULL rows). The decoder benches and the end-to-end suite both use it:
-- `cargo run -p pgarrow-testkit --example serve -- --wide N` loads the same table with N rows
-- by replacing `generate_series(1::bigint, 20000)` below, so keep that text as it is.
CREATE TABLE wide (
    id int8 NOT NULL,
    c_bool bool,
    c_int2 int2,
    c_int4 int4,
    c_int8 int8,
    c_float4 float4,
    c_float8 float8,
    c_num numeric(12,2),
    c_num_wide numeric(30,6),
    c_numeric numeric,
    c_text text,
    c_varchar varchar(32),
    c_char char(8),
    c_bytea bytea,
    c_uuid uuid,
    c_date date,
    c_time time,
    c_ts timestamp,
    c_tstz timestamptz,
    c_interval interval,
    c_jsonb jsonb
);
INSERT INTO wide
SELECT g,
       CASE WHEN g % 10 = 1 THEN NULL ELSE g % 3 = 0 END,
       CASE WHEN g % 10 = 2 THEN NULL ELSE (g % 65536 - 32768)::int2 END,
       CASE WHEN g % 10 = 3 THEN NULL ELSE (g * 7919) % 2000000 - 1000000 END,
       CASE WHEN g % 10 = 4 THEN NULL ELSE g * 1000003 END,
       CASE WHEN g % 10 = 5 THEN NULL ELSE (g % 1000) / 7.0 END,
       CASE WHEN g % 10 = 6 THEN NULL ELSE g / 13.0 END,
       CASE WHEN g % 10 = 7 THEN NULL ELSE ((g * 7919) % 10000000) / 100.0 END,
       CASE WHEN g % 10 = 8 THEN NULL ELSE (g * 104729.123457)::numeric(30,6) END,
       CASE WHEN g % 10 = 9 THEN NULL ELSE (g % 100000) / 64.0 END,
       CASE WHEN g % 10 = 0 THEN NULL ELSE substr(md5(g::text), 1, (g % 20)::int) END,
       CASE WHEN (g + 1) % 10 = 0 THEN NULL ELSE 'name-' || (g % 5000) END,
       CASE WHEN (g + 2) % 10 = 0 THEN NULL ELSE (ARRAY['AIR', 'RAIL', 'SHIP', 'TRUCK'])[g % 4 + 1] END,
       CASE WHEN (g + 3) % 10 = 0 THEN NULL ELSE decode(substr(md5((g * 3)::text), 1, 2 * (g % 12)::int), 'hex') END,
       CASE WHEN (g + 4) % 10 = 0 THEN NULL ELSE md5(g::text)::uuid END,
       CASE WHEN (g + 5) % 10 = 0 THEN NULL ELSE DATE '1990-01-01' + (g % 12000)::int END,
       CASE WHEN (g + 6) % 10 = 0 THEN NULL ELSE TIME '00:00' + make_interval(secs => (g % 86400) + 0.25) END,
       CASE WHEN (g + 7) % 10 = 0 THEN NULL ELSE TIMESTAMP '2000-01-01' + make_interval(secs => g * 3607.5) END,
       CASE WHEN (g + 8) % 10 = 0 THEN NULL ELSE TIMESTAMPTZ '2020-01-01 00:00+00' - make_interval(secs => g * 61.25) END,
       CASE WHEN (g + 9) % 10 = 0 THEN NULL ELSE make_interval(months => (g % 13)::int, days => (g % 31)::int, secs => g % 3600) END,
       CASE WHEN (g + 5) % 10 = 1 THEN NULL ELSE jsonb_build_object('k', g % 1000) END
FROM generate_series(1::bigint, 20000) AS g;
ANALYZE wide;
-- query:
SELECT * FROM wide ORDER BY id
