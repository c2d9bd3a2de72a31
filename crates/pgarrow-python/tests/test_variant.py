"""Parquet Variant columns (semi-structured values) as Spark 4 writes them, loaded into
PostgreSQL as `jsonb`: a file Spark wrote (`pgarrow import FILE`), and a Delta table of type
`variant` laid out by hand around it (`pgarrow import --delta`). Each value is compared with
what Spark's own `to_json` gives for it, as parsed JSON with numbers compared exactly; what
JSON cannot say (NaN) is refused, naming the column and the row."""

import json
import shutil
import subprocess
from decimal import Decimal

import pytest

from engines import require

require("pyspark")


from test_ducklake import pgarrow_bin
from test_spark import spark  # noqa: F401 (a fixture: one local Spark, its session zone UTC, as to_json needs)

# A wide array and object: more than 255 elements (4-byte counts), 2-byte offsets.
WIDE = json.dumps({f"key{i:03}": [i, str(i) * 3] for i in range(300)})

# (id, Spark SQL of a variant): every kind of value Spark puts in one.
VALUES = [
    (1, """parse_json('{"a": 1, "b": [true, null, "x"], "c": {"d": 1.50}}')"""),
    (2, "parse_json('[1, 2.5, -3e10, 12345678901234567890123, 1e-400, 1.0E20, -0.0]')"),
    (3, """parse_json('"hi \\\\u00e9 \\\\n \\\\u0001 \\\\" \\\\\\\\"')"""),
    (4, "parse_json('null')"),
    (5, "CAST(NULL AS variant)"),
    (6, "CAST(date'2024-02-29' AS variant)"),
    (7, "CAST(timestamp'2024-02-29 12:34:56.789012' AS variant)"),
    (8, "CAST(timestamp_ntz'2024-02-29 12:34:56.5' AS variant)"),
    (9, "CAST(CAST(1.5 AS float) AS variant)"),
    (10, "CAST(CAST(0.1 AS double) AS variant)"),
    (11, "CAST(X'00ff10' AS variant)"),
    (12, "CAST(CAST(123.4500 AS decimal(10,4)) AS variant)"),
    (13, "CAST(CAST(-7 AS tinyint) AS variant)"),
    (14, "CAST(CAST(1e300 AS double) AS variant)"),
    (15, "CAST(CAST(12345678901234567890.123456789012345678 AS decimal(38,18)) AS variant)"),
    (16, """parse_json('{"k": {}, "e": []}')"""),
    (17, "CAST(CAST(1e-7 AS double) AS variant)"),
    (18, "CAST(date'0001-01-01' AS variant)"),
    (19, f"parse_json('{WIDE}')"),
    (20, "CAST(timestamp'1969-12-31 23:59:59.5' AS variant)"),
    (21, "CAST(CAST(9223372036854775807 AS bigint) AS variant)"),
    (22, f"""parse_json('"{'x' * 100}"')"""),
    (23, "CAST(X'ff' AS variant)"),
    (24, "CAST(CAST(0.1 AS float) AS variant)"),
    (25, "CAST(array(date'2024-01-01', date'2024-01-02') AS variant)"),
    (26, "to_variant_object(named_struct('when', timestamp'2024-01-01 00:00:00', 'n', 1, 'm', map('k', 2.50)))"),
    (27, "CAST('plain text' AS variant)"),
    (28, "CAST(true AS variant)"),
    (29, "CAST(CAST(-0.001 AS decimal(5,3)) AS variant)"),
    (30, "CAST(timestamp_ntz'0001-01-01 00:00:00' AS variant)"),
]


def values_sql(values) -> str:
    return "SELECT * FROM VALUES " + ", ".join(f"({i}, {sql})" for i, sql in values) + " AS t(id, v)"


def spark_file(spark, values, path) -> tuple[str, dict[int, str | None]]:
    """One Parquet file Spark writes of `values` under `path`, and Spark's `to_json` of each."""
    df = spark.sql(values_sql(values))
    df.coalesce(1).write.mode("overwrite").parquet(str(path))
    files = sorted(path.glob("*.parquet"))
    assert len(files) == 1
    back = spark.read.parquet(str(path))
    assert dict(back.dtypes)["v"] == "variant"
    want = {r.id: r.j for r in back.selectExpr("id", "to_json(v) AS j").collect()}
    return str(files[0]), want


def exact(text):
    """JSON text parsed, every number a Decimal (compared exactly)."""
    return None if text is None else json.loads(text, parse_float=Decimal, parse_int=Decimal)


def loaded(conn, table) -> dict[int, str | None]:
    return dict(conn.execute(f"SELECT id, v::text FROM {table}").fetchall())


def column_type(conn, table, column) -> str:
    return conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
        (table, column),
    ).fetchone()[0]


def pg_import(url, into, *source):
    return subprocess.run(
        [pgarrow_bin(), "import", "-d", url, "--quiet", *source, "--into", into, "--create"],
        capture_output=True, text=True, timeout=120,
    )


def assert_as_spark(got: dict, want: dict):
    assert sorted(got) == sorted(want)
    for i in sorted(want):
        assert exact(got[i]) == exact(want[i]), (i, got[i], want[i])


@pytest.fixture(scope="module")
def written(spark, tmp_path_factory):
    return spark_file(spark, VALUES, tmp_path_factory.mktemp("variant") / "spark")


def test_a_spark_variant_file_loads_as_jsonb_equal_to_to_json(url, conn, written):
    path, want = written
    # Spark's forms, which pgarrow's text must equal.
    assert want[5] is None and want[4] == "null"
    assert want[6] == '"2024-02-29"' and want[7] == '"2024-02-29 12:34:56.789012+00:00"'
    assert want[8] == '"2024-02-29 12:34:56.5"' and want[11] == '"AP8Q"' and want[12] == "123.45"
    conn.execute("DROP TABLE IF EXISTS variant_file")
    out = pg_import(url, "variant_file", path)
    assert out.returncode == 0, out.stderr
    assert column_type(conn, "variant_file", "v") == "jsonb"
    got = loaded(conn, "variant_file")
    assert_as_spark(got, want)
    # Strings, dates and timestamps are the very text (not only equal documents).
    for i in (3, 6, 7, 8, 11, 18, 20, 22, 23, 25, 26, 27, 30):
        assert json.loads(got[i]) == json.loads(want[i]), i
    # SQL NULL and JSON null stay apart.
    assert conn.execute("SELECT v IS NULL, v = 'null'::jsonb FROM variant_file WHERE id = 4").fetchone() == (
        False, True)
    assert conn.execute("SELECT v IS NULL FROM variant_file WHERE id = 5").fetchone() == (True,)
    # Numbers exactly: a 23-digit integer and a 38-digit decimal.
    assert exact(got[2])[3] == Decimal("12345678901234567890123")
    assert exact(got[15]) == Decimal("12345678901234567890.123456789012345678")


def test_nan_is_refused_naming_the_column_and_row(url, conn, spark, tmp_path):
    path, want = spark_file(
        spark, [(1, "CAST(1.5 AS variant)"), (2, "CAST(CAST('NaN' AS double) AS variant)")], tmp_path / "nan")
    # Spark writes NaN as the string "NaN", which is no longer a number: pgarrow refuses it.
    assert want[2] == '"NaN"'
    conn.execute("DROP TABLE IF EXISTS variant_nan")
    out = pg_import(url, "variant_nan", path)
    assert out.returncode != 0
    assert 'column "v", row 1' in out.stderr and "NaN" in out.stderr, out.stderr
    assert conn.execute("SELECT to_regclass('variant_nan')").fetchone() == (None,)


def delta_table(root, files, columns):
    """A Delta table laid out by hand: protocol (reader 3, writer 7, `variantType`), metadata
    of `columns` ((name, Delta type)), and `files` copied in as its data files."""
    log = root / "_delta_log"
    log.mkdir(parents=True)
    schema = {"type": "struct", "fields": [
        {"name": name, "type": ty, "nullable": True, "metadata": {}} for name, ty in columns]}
    actions = [
        {"protocol": {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["variantType"],
                      "writerFeatures": ["variantType"]}},
        {"metaData": {"id": "5f2a1c3e-0b7d-4a58-9c61-2d0e8f4b7a10", "format": {"provider": "parquet", "options": {}},
                      "schemaString": json.dumps(schema), "partitionColumns": [], "configuration": {},
                      "createdTime": 1_700_000_000_000}},
    ]
    for k, source in enumerate(files):
        name = f"part-{k:05}.parquet"
        shutil.copy(source, root / name)
        actions.append({"add": {"path": name, "partitionValues": {}, "size": (root / name).stat().st_size,
                                "modificationTime": 1_700_000_000_000, "dataChange": True}})
    (log / f"{0:020}.json").write_text("".join(json.dumps(a) + "\n" for a in actions))


def test_a_delta_variant_column_loads_as_jsonb(url, conn, written, tmp_path):
    import pyarrow.parquet as pq

    path, want = written
    # The same values in a file whose group is not annotated VARIANT (as pyarrow rewrites it):
    # the table's type says what it is.
    plain = tmp_path / "plain.parquet"
    pq.write_table(pq.read_table(path), plain)
    assert "Variant" not in str(pq.ParquetFile(plain).schema)
    assert "Variant" in str(pq.ParquetFile(path).schema)
    table = tmp_path / "delta"
    delta_table(table, [path, plain], [("id", "integer"), ("v", "variant")])
    conn.execute("DROP TABLE IF EXISTS variant_delta")
    out = pg_import(url, "variant_delta", "--delta", str(table))
    assert out.returncode == 0, out.stderr
    assert column_type(conn, "variant_delta", "v") == "jsonb"
    rows = conn.execute("SELECT id, v::text FROM variant_delta").fetchall()
    assert len(rows) == 2 * len(want)
    for i, text in rows:
        assert exact(text) == exact(want[i]), (i, text, want[i])
    # Without variantType among the protocol's reader features pgarrow knows, the table would
    # be refused: the feature is what makes it readable.
    log = table / "_delta_log" / f"{1:020}.json"
    log.write_text(json.dumps({"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                                            "readerFeatures": ["variantType", "variantShredding-preview"],
                                            "writerFeatures": ["variantType"]}}) + "\n")
    conn.execute("DROP TABLE IF EXISTS variant_delta_shredding")
    out = pg_import(url, "variant_delta_shredding", "--delta", str(table))
    assert out.returncode != 0 and "variantShredding-preview" in out.stderr, out.stderr
