"""Every PostgreSQL type into every lake format by a lossless default: `uuid` (a primary key),
`time`, `timetz`, `interval`, `oid`, `numeric` past 38 digits, enums, and arrays of them, into
DuckLake, Delta and Iceberg tables, through the export a mirror starts with, the mirror's
updates, deletes and key changes, `pgarrow lake compact`, and `pgarrow apply` of change files;
read by each format's own readers in the form the book gives, and loaded back by `pgarrow
import --create` into the same PostgreSQL types with the same values."""

import json
import subprocess
import uuid

import psycopg
import pytest

from test_mirror import (  # noqa: F401 (lake, slot, source: fixtures)
    FORMATS, lake, lake_flags, mirror, pgarrow_bin, run, slot, source, upkeep, upkeep_flags)

COLUMNS = ["id", "n", "at_time", "span", "at_tz", "o", "wide", "ids", "spans", "mood", "label", "times", "zones"]


def make_table(url, table):
    run(url, f"""DROP TABLE IF EXISTS {table}, {table}_back, {table}_applied_back;
        DROP TYPE IF EXISTS {table}_mood;
        CREATE TYPE {table}_mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE {table} (
            id uuid PRIMARY KEY, n int, at_time time, span interval, at_tz timetz, o oid,
            wide numeric(50,2), ids uuid[], spans interval[], mood {table}_mood, label text,
            times time[], zones timetz[]);
        INSERT INTO {table}
        SELECT md5(g::text)::uuid, g, time '00:00' + g * interval '17 min 3.000123 s',
               make_interval(months => g, days => -g, secs => g * 1.000001),
               timetz '10:00:00.5+05:30' + g * interval '1 min 0.25 s', (g * 1000)::oid,
               (repeat('9', 46) || g || '.25')::numeric(50,2),
               ARRAY[md5((g + 1000)::text)::uuid, NULL], ARRAY[interval '1 mon 2 days 3.000004 s', NULL],
               (ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::{table}_mood, 'row ' || g,
               ARRAY[time '01:02:03.5' + g * interval '1 s', NULL, time '23:59:59.999999'],
               ARRAY[timetz '10:00:00.5+05:30' + g * interval '1 s', NULL, timetz '24:00:00-15:59']
          FROM generate_series(1, 40) g;
        INSERT INTO {table} (id, n) VALUES ('00000000-0000-0000-0000-000000000000', 0)""")


def change_rows(url, table):
    """Updates of every kind of column, deletes, inserts and a key change, in two
    transactions."""
    run(url, f"""BEGIN;
        UPDATE {table} SET span = span + interval '1 us', at_time = '23:59:59.999999', at_tz = '24:00:00-03:30',
                           wide = -wide, ids = ARRAY[gen_random_uuid()] WHERE n % 5 = 0;
        DELETE FROM {table} WHERE n % 7 = 0;
        COMMIT;
        BEGIN;
        INSERT INTO {table} (id, n, at_time, span, o, wide, mood, label)
          VALUES (gen_random_uuid(), 100, '12:00', '-3 years 2 days -00:00:00.000001', 4294967295,
                  -1.01, 'happy', 'new');
        UPDATE {table} SET id = 'ffffffff-ffff-ffff-ffff-ffffffffffff', label = 'moved' WHERE n = 3;
        COMMIT""")


def as_text(url, table):
    with psycopg.connect(url, autocommit=True) as c:
        return c.execute(
            f"SELECT {', '.join(f'{col}::text' for col in COLUMNS)} FROM {table} ORDER BY id").fetchall()


def column_types(url, table):
    with psycopg.connect(url, autocommit=True) as c:
        return c.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (table,)).fetchall()


def import_back(fmt, flags, url, table, into):
    out = subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", *flags, "--into", into, "--create",
         "--mode", "replace"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{fmt}: {out.stderr}"
    assert column_types(url, into) == column_types(url, table), fmt
    got, want = as_text(url, into), as_text(url, table)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == w, (fmt, g, w)


def check_reader(fmt, lake, table, url, duckdb_lake):
    """The lake table's own reader sees each value in the form the book gives."""
    want = {str(r[0]): r for r in as_text(url, table)}
    if fmt == "delta":
        import deltalake
        import pyarrow as pa

        dt = deltalake.DeltaTable(str(lake[1] / "delta" / table))
        got = pa.table(dt.scan())
        types = {f.name: str(f.type) for f in dt.schema().fields}  # deltalake names the Delta type
        assert types["id"] == 'PrimitiveType("string")' and types["at_time"] == 'PrimitiveType("string")', types
        assert types["o"] == 'PrimitiveType("long")' and types["wide"] == 'PrimitiveType("string")', types
        meta = {f.name: f.metadata for f in dt.schema().fields}
        assert meta["id"] == {"pgarrow.form": "text", "pgarrow.pg_type": "uuid"}, meta["id"]
        rows = got.to_pylist()
        assert {r["id"] for r in rows} == set(want)
        for r in rows:
            w = want[r["id"]]
            assert r["at_time"] == w[2] and r["at_tz"] == w[4] and r["wide"] == w[6], (r, w)
            assert r["o"] == (None if w[5] is None else int(w[5]))
        spans = [r["span"] for r in rows if r["span"] is not None]
        assert spans and set(spans[0]) == {"months", "days", "microseconds"}
        return
    if fmt == "iceberg":
        from test_mirror import iceberg_table

        t = iceberg_table(lake, table)
        fields = {f.name: str(f.field_type) for f in t.schema().fields}
        assert fields["id"] == "uuid" and fields["at_time"] == "time" and fields["o"] == "long", fields
        assert fields["span"].startswith("struct<"), fields
        rows = t.scan().to_arrow().to_pylist()
        assert {str(uuid.UUID(bytes=r["id"])) if isinstance(r["id"], bytes) else str(r["id"]) for r in rows} \
            == set(want)
        return
    got = duckdb_lake(lake[0], f"SELECT id::varchar, at_time::varchar, o::varchar FROM lake.main.{table}")
    assert {r[0] for r in got} == set(want)
    for r in got:
        assert r[1] == want[r[0]][2] and r[2] == want[r[0]][5], (r, want[r[0]])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_type_is_mirrored_compacted_and_loaded_back_exactly(source, lake, slot, fmt, duckdb_lake):
    table = f"lake_types_{fmt}"
    make_table(source, table)
    first = mirror(source, lake, slot, table, fmt=fmt)
    assert first.returncode == 0
    change_rows(source, table)
    mirror(source, lake, slot, table, fmt=fmt)
    check_reader(fmt, lake, table, source, duckdb_lake)
    import_back(fmt, upkeep_flags(fmt, lake, table), source, table, f"{table}_back")
    # Compaction rewrites every type (the deletes folded in), and changes go on after it.
    stats = upkeep(fmt, lake, table, "compact")
    assert stats["commits"] == 1 and stats["deletes_folded"] > 0, stats
    run(source, f"UPDATE {table} SET span = span * 2, at_time = '00:00:00.000001' WHERE n = 1")
    mirror(source, lake, slot, table, fmt=fmt)
    import_back(fmt, upkeep_flags(fmt, lake, table), source, table, f"{table}_back")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_type_is_applied_from_change_files_exactly(source, lake, slot, fmt, tmp_path):
    table = f"lake_types_apply_{fmt}"
    make_table(source, table)
    run(source, f"CREATE PUBLICATION {slot} FOR TABLE {table}")
    out = subprocess.run([pgarrow_bin(), "export", "-d", source, "-t", table, "--replication-slot",
                          slot, "--create-slot", *lake_flags(fmt, lake, table), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    change_rows(source, table)
    changes = tmp_path / "changes"
    out = subprocess.run([pgarrow_bin(), "changes", "-d", source, "--slot", slot, "--publication", slot,
                          "-o", str(changes), "--catch-up", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([pgarrow_bin(), "apply", str(changes), *upkeep_flags(fmt, lake, table), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rolls"] >= 1
    import_back(fmt, upkeep_flags(fmt, lake, table), source, table, f"{table}_applied_back")
