-- Arrays (1-D, 2-D, empty, NULL elements), composites (nested, all NULL), ranges (empty,
-- unbounded, infinity bounds), multiranges, hstore, "char", money, domains, and types loaded
-- through their text (inet, cidr, macaddr, bit, tsvector, point, inet[]): `src` and `dst`.
CREATE EXTENSION hstore;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE TYPE nest AS (p pair, tags text[], m mood, r int4range);
CREATE DOMAIN short_text AS varchar(5);
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE src (
    id int, ia int[], ta text[], m2 int[][], na numeric(10,2)[], ea mood[], tza timestamptz[],
    ba bytea[], p pair, o nest, pa pair[], r int4range, tr tstzrange, nr numrange, dr daterange,
    mr int4multirange, h hstore, ch "char", mo money, st short_text, pi posint, pia posint[],
    ip inet, cd cidr, mac macaddr, bits bit(4), tsv tsvector, pt point, ipa inet[]
);
INSERT INTO src VALUES
 (1, '{1,NULL,-3}', '{"a b","",NULL,"é"}', '{{1,2,3},{4,5,6}}', '{1.50,-0.01,NULL}',
  '{happy,sad}', '{infinity,"2024-01-01 10:00:00+02",-infinity}', '{"\\x00ff",NULL}',
  '(1,"x y")', '("(2,)","{a,NULL}",ok,"[1,5)")', '{"(1,a)",NULL,"(,)"}', '[1,5)',
  '[-infinity,infinity]', '(,1.5]', '[2024-01-01,)', '{[1,3),[5,7)}', 'a=>1, "b c"=>NULL',
  'x', '12.34', 'abc', 7, '{1,2}', '10.1.2.3/16', '10.1.0.0/16', '08:00:2b:01:02:03', B'1010',
  'a fat cat', '(1.5,-2)', '{::1,192.168.0.1/24}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '{}', '{NULL}', '{}', '{}', '{}', '{}', '{}', '(,)', '(,,,)', '{}', 'empty', '(,)', 'empty',
  'empty', '{}', '', '', '-0.01', '', 1, '{}', '::ffff:1.2.3.4', '::/0', 'ff:ff:ff:ff:ff:ff',
  B'0000', '', '(0,0)', '{}');
CREATE TABLE dst (LIKE src);
