-- Every type of the walking skeleton with edge values, 64 rows with NULLs spread around.
CREATE TABLE t (
    id int4 NOT NULL,
    b bool, i2 int2, i4 int4, i8 int8, o oid,
    f4 float4, f8 float8,
    n numeric, n122 numeric(12,2), n50 numeric(50,10),
    t text, vc varchar(20), c char(5), nm name,
    by bytea, u uuid, j json, jb jsonb,
    d date, tm time, ts timestamp, tstz timestamptz, iv interval,
    fallback inet
);
INSERT INTO t
SELECT g,
       CASE WHEN g % 7 = 0 THEN NULL ELSE g % 2 = 0 END,
       (ARRAY[-32768, -1, 0, 1, 32767])[g % 5 + 1],
       (ARRAY[-2147483648, -1, 0, 1, 2147483647])[g % 5 + 1],
       (ARRAY[-9223372036854775808, -1, 0, 1, 9223372036854775807])[g % 5 + 1],
       (ARRAY[0, 2147483648, 4000000000]::oid[])[g % 3 + 1],
       (ARRAY['0', '-0', 'NaN', 'Infinity', '-Infinity', '1.17549435e-38', '3.4028235e38', '0.1']::float4[])[g % 8 + 1],
       (ARRAY['0', '-0', 'NaN', 'Infinity', '-Infinity', '4.9e-324', '1.7976931348623157e308', '0.1']::float8[])[g % 8 + 1],
       (ARRAY['0', '0.000', '1000000', '0.00001234', '1.0000', '-123.456', '1e-30', '123456789012345678901234567890123456789012.5']::numeric[])[g % 8 + 1],
       (g * 1234567.89 / 7)::numeric(12,2) * (CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END),
       ('1234567890123456789012345678901234567890.' || lpad(g::text, 10, '0'))::numeric(50,10),
       CASE WHEN g % 9 = 0 THEN NULL WHEN g % 9 = 1 THEN '' ELSE repeat('🦀ж中ไ', g % 4) || g END,
       'v' || g,
       CASE WHEN g % 4 = 0 THEN NULL ELSE 'ab' END,
       repeat('n', 63),
       CASE WHEN g % 5 = 0 THEN NULL WHEN g % 5 = 1 THEN ''::bytea ELSE decode(repeat('00ff', g), 'hex') END,
       ('00000000-0000-0000-0000-' || lpad(to_hex(g * 7919), 12, '0'))::uuid,
       json_build_object('g', g, 's', 'x"y'),
       jsonb_build_object('g', g, 'a', jsonb_build_array(1, 'two', NULL)),
       (ARRAY['1999-12-31', '2000-01-01', '1970-01-01', '0001-01-01', '4714-11-24 BC', '5874897-12-31']::date[])[g % 6 + 1],
       (ARRAY['00:00', '23:59:59.999999', '12:34:56.789']::time[])[g % 3 + 1],
       (ARRAY['1970-01-01', '1969-12-31 23:59:59.999999', '1900-01-01', '4713-01-01 BC', '294246-12-31 23:59:59.999999']::timestamp[])[g % 5 + 1],
       (ARRAY['2000-01-01 00:00+00', '1969-12-31 23:59:59.999999+05:30', '2024-02-29 12:00-08']::timestamptz[])[g % 3 + 1],
       (ARRAY['1 mon -2 days 03:04:05.000006', '1 month', '30 days', '-2562047 hours', '0']::interval[])[g % 5 + 1],
       ('10.0.' || g || '.1/24')::inet
FROM generate_series(1, 64) AS g;
-- query:
SELECT id, b, i2, i4, i8, o, f4, f8, n, n122, n50, t, vc, c, nm, by, u, j, jb, d, tm, ts, tstz, iv,
       fallback::text AS fallback
FROM t ORDER BY id
