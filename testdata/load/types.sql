-- Every scalar type pgarrow loads, with its extremes (±infinity, NaN, -0, int/oid limits,
-- 4713 BC, 5874897 AD, 63-byte names, 10 kB bytea): `src`, and `dst` LIKE it, for round trips
-- compared by the server's rendering (crates/pgarrow-encode/tests/round_trip.rs,
-- crates/pgarrow-cli/tests/import.rs).
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE src (
    id int, b bool, i2 int2, i4 int4, i8 int8, o oid, f4 float4, f8 float8,
    n numeric, n12 numeric(12,2), n40 numeric(40,10), t text, v varchar(10), c char(5),
    nm name, by bytea, u uuid, j json, jb jsonb, d date, tm time, ts timestamp,
    tz timestamptz, iv interval, m mood
);
INSERT INTO src VALUES
 (1, true, -32768, -2147483648, -9223372036854775808, 0, 'NaN', '-0', 'NaN', -9999999999.99,
  '-123456789012345678901234567890.0123456789', '', '', '', '', '\x', '00000000-0000-0000-0000-000000000000',
  'null', '[]', '-infinity', '00:00', '-infinity', '-infinity', '-178000000 years', 'sad'),
 (2, false, 32767, 2147483647, 9223372036854775807, 4294967295, 'Infinity', '-Infinity',
  'Infinity', 9999999999.99, '999999999999999999999999999999.9999999999', 'héllo wörld ✓',
  'ten chars!', 'ab', 'a name', '\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"a": [1, 2.50, null]}', '{"b": {"c": true}}', 'infinity', '00:00:00.000001', 'infinity',
  'infinity', '1 year 2 mons 3 days 04:05:06.789', 'happy'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, true, 0, 0, 0, 1, 1.5, 2.2250738585072014e-308, '-Infinity', 0, 0, 'x', 'y', 'z', 'n', '\x00',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '"s"', '1', '4713-11-24 BC', '23:59:59.999999',
  '4713-11-24 00:00:00 BC', '294246-12-31 23:59:59.999999+00', '-1 day -00:00:00.000001', 'ok'),
 (5, false, 1, 2, 3, 4, 3.4028235e38, 1.7976931348623157e308, 0.000000001, 0.01, 1e-10,
  repeat('long ', 1000), 'v', 'c', repeat('n', 63), decode(repeat('ab', 5000), 'hex'),
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', '{}', '{"k": "\u00e9"}', '5874897-12-31',
  '12:34:56.5', '2024-02-29 12:00:00.000001', '1999-12-31 23:59:59.999999-08',
  '-2147483648 days', 'sad');
CREATE TABLE dst (LIKE src);
