"""pgvector's three types exported and loaded exactly: `vector` as Float32 lists, `halfvec` as
Float16 lists, `sparsevec` as {dim, indices (0-based), values}, through Parquet and back into
the same types, on a server with pgvector (the `pgvector_url` fixture)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pgarrow

TABLE = """
CREATE TABLE {name} (id int, v vector(3), h3 halfvec(3), h halfvec, s5 sparsevec(5), s sparsevec);
INSERT INTO {name} VALUES
 (1, '[1,2,3]', '[1,2,3]', '[0.5]', '{{1:1.5,5:-2}}/5', '{{1:1}}/1'),
 (2, '[-1.5,0,1e-7]', '[-1.5,0,0.1]', '[65504,-65504,6e-8,1e-4,-0]', '{{}}/5',
     '{{3:7,1000000:0.25}}/1000000'),
 (3, NULL, NULL, NULL, NULL, NULL),
 (4, '[3.4028235e38,-0,1]', '[3,-0,1]', '[7]', '{{2:3.4028235e38}}/5', '{{}}/3');
"""

COLUMNS = ["v", "h3", "h", "s5", "s"]


def server_text(conn, table: str) -> list[tuple]:
    cols = ", ".join(f"{c}::text" for c in COLUMNS)
    return conn.execute(f"SELECT id, {cols} FROM {table} ORDER BY id").fetchall()


def test_halfvec_and_sparsevec_types_and_values(pgvector_url, pgvector_conn):
    pgvector_conn.execute(TABLE.format(name="pv_types"))
    t = pgarrow.read_arrow(pgvector_url, "SELECT * FROM pv_types ORDER BY id")
    assert t.schema.field("v").type == pa.list_(pa.float32(), 3)
    assert t.schema.field("h3").type == pa.list_(pa.float16(), 3)
    assert t.schema.field("h").type == pa.list_(pa.float16())
    s = t.schema.field("s").type
    assert [s.field(k).name for k in range(s.num_fields)] == ["dim", "indices", "values"]
    assert s.field("indices").type.value_type == pa.int32()
    assert s.field("values").type.value_type == pa.float32()

    # halfvec: each element as the server widens it (halfvec -> vector is exact; its float4
    # text is the shortest that reads back as the same float4).
    def f32(values):
        return None if values is None else [np.float32(x).tobytes() for x in values]

    for c in ("h3", "h"):
        want = pgvector_conn.execute(f"SELECT {c}::vector::real[] FROM pv_types ORDER BY id").fetchall()
        got = t.column(c).to_pylist()
        assert [f32(g) for g in got] == [f32(w) for (w,) in want], c

    # sparsevec: the 0-based indices and values, and densified the server's own cast.
    got = t.column("s").to_pylist()
    assert got[1] == {"dim": 1000000, "indices": [2, 999999], "values": [7.0, 0.25]}
    assert got[2] is None
    assert got[3] == {"dim": 3, "indices": [], "values": []}
    want = pgvector_conn.execute("SELECT s5::vector::real[] FROM pv_types ORDER BY id").fetchall()
    for g, (w,) in zip(t.column("s5").to_pylist(), want):
        if w is None:
            assert g is None
            continue
        dense = np.zeros(g["dim"], dtype=np.float32)
        dense[g["indices"]] = g["values"]
        assert f32(dense.tolist()) == f32(w)


def test_every_vector_type_round_trips_through_parquet(pgvector_url, pgvector_conn, tmp_path):
    pgvector_conn.execute(TABLE.format(name="pv_src"))
    path = tmp_path / "pv.parquet"
    pgarrow.export_file(pgvector_url, table="pv_src", path=path)
    back = pq.read_table(path)
    assert back.schema.field("h").type == pa.list_(pa.float16())
    pgvector_conn.execute(
        "CREATE TABLE pv_back (id int, v vector(3), h3 halfvec(3), h halfvec, s5 sparsevec(5), s sparsevec)"
    )
    assert pgarrow.write(pgvector_url, "pv_back", path)["rows"] == 4
    assert server_text(pgvector_conn, "pv_back") == server_text(pgvector_conn, "pv_src")


def test_other_arrow_types_load_into_halfvec_and_sparsevec(pgvector_url, pgvector_conn):
    pgvector_conn.execute("CREATE TABLE pv_in (id int, h halfvec, s sparsevec)")
    sparse = pa.struct([("dim", pa.int64()), ("indices", pa.list_(pa.int64())), ("values", pa.list_(pa.float64()))])
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            # float32 and float64 values exact in half precision go in.
            "h": pa.array([[0.5, -2.0], [1024.0]], pa.list_(pa.float64())),
            "s": pa.array([{"dim": 4, "indices": [0, 3], "values": [1.0, -0.5]}, None], sparse),
        }
    )
    pgarrow.write(pgvector_url, "pv_in", table)
    rows = pgvector_conn.execute("SELECT h::text, s::text FROM pv_in ORDER BY id").fetchall()
    assert rows == [("[0.5,-2]", "{1:1,4:-0.5}/4"), ("[1024]", None)]


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("h", pa.array([[0.1]], pa.list_(pa.float64())), "not exact in halfvec"),
        ("h", pa.array([[70000.0]], pa.list_(pa.float32())), "not exact in halfvec"),
        ("h", pa.array([[1.0, None]], pa.list_(pa.float32())), "NULL (a halfvec holds none)"),
        ("s", pa.array([{"dim": 3, "indices": [2, 1], "values": [1.0, 2.0]}]), "indices are 0-based, increasing"),
        ("s", pa.array([{"dim": 3, "indices": [3], "values": [1.0]}]), "below the dimension"),
        ("s", pa.array([{"dim": 3, "indices": [0, 1], "values": [1.0]}]), "2 indices and 1 values"),
        (
            "s",
            pa.array(
                [{"dim": 0, "indices": [], "values": []}],
                pa.struct([("dim", pa.int32()), ("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float32()))]),
            ),
            "dimension 0",
        ),
        ("s", pa.array([{"dim": 3, "values": [1.0]}]), "cannot be loaded into sparsevec"),
    ],
)
def test_bad_vectors_are_named(pgvector_url, pgvector_conn, column, value, message):
    pgvector_conn.execute("CREATE TABLE IF NOT EXISTS pv_bad (id int, h halfvec, s sparsevec)")
    table = pa.table({"id": pa.array([7], pa.int32()), column: value})
    with pytest.raises(pgarrow.Error) as e:
        pgarrow.write(pgvector_url, "pv_bad", table)
    text = str(e.value)
    assert message in text, text
    assert column in text, text
    assert pgvector_conn.execute("SELECT count(*) FROM pv_bad").fetchone()[0] == 0
