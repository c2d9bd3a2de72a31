"""PostGIS geometries as GeoParquet 1.1 and GeoArrow: ISO WKB, the `geo` file metadata
(geometry types, bounding box, the CRS as PROJJSON, spherical edges), read back by readers
nobody here wrote (GeoPandas, DuckDB's spatial extension) as the geometries PostGIS's
ST_AsText shows; and GeoParquet loaded into PostGIS with its SRID."""

import json
import os

import geopandas
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

import pgarrow


TABLE = """
CREATE TABLE {name} (
    id int,
    pt geometry(Point, 4326),
    area geometry,
    z geometry(GeometryZ, 32633),
    route geography,
    plain geometry
);
INSERT INTO {name} VALUES
 (1, 'SRID=4326;POINT(13.4 52.5)', 'SRID=3857;POLYGON((0 0,10 0,10 10,0 10,0 0),(2 2,3 2,3 3,2 2))',
     'SRID=32633;POINT Z (390000 5800000 34.5)', 'LINESTRING(13.4 52.5, 2.35 48.85)', 'POINT(1 2)'),
 (2, 'SRID=4326;POINT(-73.98 40.75)', 'SRID=3857;MULTIPOLYGON(((20 20,30 20,30 30,20 20)),((-5 -5,-4 -5,-4 -4,-5 -5)))',
     'SRID=32633;LINESTRING Z (0 0 1, 1 1 2)', NULL, 'LINESTRING EMPTY'),
 (3, NULL, NULL, NULL, 'POINT(-0.1 51.5)', NULL),
 (4, 'SRID=4326;POINT EMPTY', 'SRID=3857;GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 2 2))',
     NULL, NULL, 'MULTIPOINT((0 0),(1 1))');
"""

GEOMETRIES = ["pt", "area", "z", "route", "plain"]


@pytest.fixture(scope="module")
def geo_table(conn):
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except Exception as e:
        if os.environ.get("PGARROW_REQUIRE_POSTGIS") == "1":
            raise
        pytest.skip(f"SKIPPED: PostGIS is not installed: {e}")
    conn.execute("DROP TABLE IF EXISTS geo_src")
    conn.execute(TABLE.format(name="geo_src"))
    return "geo_src"


def postgis_text(conn, table: str) -> dict[str, list]:
    """Each geometry column's values as PostGIS's ST_AsText shows them, by id order."""
    cols = ", ".join(f"ST_AsText({c})" for c in GEOMETRIES)
    rows = conn.execute(f"SELECT {cols} FROM {table} ORDER BY id").fetchall()
    return {c: [r[k] for r in rows] for k, c in enumerate(GEOMETRIES)}


def same(a, b) -> bool:
    """One geometry (shapely, or WKT from any writer), compared with another by shapely's
    exact equality of the parsed forms (empties equal empties of their type)."""
    if a is None or b is None:
        return a is None and b is None
    a = shapely.from_wkt(a) if isinstance(a, str) else a
    b = shapely.from_wkt(b) if isinstance(b, str) else b
    if a.is_empty or b.is_empty:
        return a.is_empty and b.is_empty and a.geom_type == b.geom_type
    return shapely.equals_exact(a, b, tolerance=0)


def test_geoparquet_metadata_names_types_bbox_crs_and_edges(url, conn, geo_table, tmp_path):
    path = tmp_path / "geo.parquet"
    pgarrow.export_file(url, table=geo_table, path=path)
    geo = json.loads(pq.read_metadata(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["primary_column"] == "pt"
    cols = geo["columns"]
    assert set(cols) == set(GEOMETRIES)
    assert all(c["encoding"] == "WKB" for c in cols.values())
    assert cols["pt"]["geometry_types"] == ["Point"]
    assert sorted(cols["area"]["geometry_types"]) == ["GeometryCollection", "MultiPolygon", "Polygon"]
    assert sorted(cols["z"]["geometry_types"]) == ["LineString Z", "Point Z"]
    # The CRS: PROJJSON (the column's declared SRID, or its values'), null for none.
    assert cols["pt"]["crs"]["id"] == {"authority": "EPSG", "code": 4326}
    assert cols["area"]["crs"]["id"] == {"authority": "EPSG", "code": 3857}
    assert cols["z"]["crs"]["id"] == {"authority": "EPSG", "code": 32633}
    assert cols["z"]["crs"]["name"] == "WGS 84 / UTM zone 33N"
    assert cols["plain"]["crs"] is None
    assert cols["route"]["edges"] == "spherical" and "edges" not in cols["pt"]
    # The box of every coordinate (POINT EMPTY's NaNs left out), as PostGIS computes it.
    for c in ("pt", "area", "plain"):
        box = conn.execute(
            f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            f"(SELECT ST_Extent({c}) AS e FROM {geo_table}) AS x"
        ).fetchone()
        assert cols[c]["bbox"] == pytest.approx(list(box), abs=0), c


def test_geopandas_reads_the_geometries_and_their_crs(url, conn, geo_table, tmp_path):
    path = tmp_path / "geo.parquet"
    pgarrow.export_file(url, table=geo_table, path=path)
    frame = geopandas.read_parquet(path)
    assert frame.geometry.name == "pt"
    want = postgis_text(conn, geo_table)
    for c in GEOMETRIES:
        series = frame[c]
        assert isinstance(series, geopandas.GeoSeries), c
        got = [None if g is None else g for g in series]
        assert all(same(g, w) for g, w in zip(got, want[c], strict=True)), (c, got, want[c])
    assert frame["pt"].crs.to_epsg() == 4326
    assert frame["area"].crs.to_epsg() == 3857
    assert frame["z"].crs.to_epsg() == 32633
    assert frame["route"].crs.to_epsg() == 4326
    assert frame["plain"].crs is None
    assert frame["z"].has_z.iloc[0]


def test_duckdb_spatial_reads_the_geometries(url, conn, geo_table, tmp_path, duckdb_spatial):
    path = tmp_path / "geo.parquet"
    pgarrow.export_file(url, table=geo_table, path=path)
    cols = ", ".join(f"ST_AsText({c})" for c in GEOMETRIES)
    rows = duckdb_spatial(f"SELECT {cols} FROM read_parquet('{path}') ORDER BY id")
    want = postgis_text(conn, geo_table)
    for k, c in enumerate(GEOMETRIES):
        got = [r[k] for r in rows]
        assert all(same(g, w) for g, w in zip(got, want[c], strict=True)), (c, got, want[c])
    # DuckDB takes the CRS from the file's metadata into the column's type.
    types = duckdb_spatial(f"SELECT typeof(pt), typeof(area) FROM read_parquet('{path}') LIMIT 1")
    assert "4326" in types[0][0] and "3857" in types[0][1], types


def test_geo_types_write_parquets_own_geometry_and_geography(url, conn, geo_table, tmp_path, duckdb_spatial):
    plain, native = tmp_path / "plain.parquet", tmp_path / "native.parquet"
    pgarrow.export_file(url, table=geo_table, path=plain)
    pgarrow.export_file(url, table=geo_table, path=native, geo_types=True)

    def logical(path):
        schema = pq.ParquetFile(path).schema
        return {schema.column(i).name: schema.column(i).logical_type for i in range(len(schema))}

    # Without asking: plain binary, described by the `geo` metadata alone.
    assert {c: logical(plain)[c].type for c in GEOMETRIES} == {c: "NONE" for c in GEOMETRIES}
    types = logical(native)
    assert {c: types[c].type for c in GEOMETRIES} == {
        "pt": "GEOMETRY", "area": "GEOMETRY", "z": "GEOMETRY", "route": "GEOGRAPHY", "plain": "GEOMETRY",
    }
    # The CRS in the type: none for longitude/latitude (Parquet's default, OGC:CRS84), the
    # column's EPSG code otherwise, srid:0 for PostGIS's unknown.
    crs = {c: json.loads(types[c].to_json()).get("crs") for c in GEOMETRIES}
    assert crs == {"pt": None, "area": "EPSG:3857", "z": "EPSG:32633", "route": None, "plain": "srid:0"}, crs
    # GeoParquet 1.1's metadata is there too, and readers of either read the geometries.
    assert b"geo" in pq.read_metadata(native).metadata
    frame = geopandas.read_parquet(native)
    want = postgis_text(conn, geo_table)
    assert all(same(g, w) for g, w in zip(frame["area"], want["area"], strict=True))
    assert frame["z"].crs.to_epsg() == 32633
    cols = ", ".join(f"ST_AsText({c})" for c in GEOMETRIES)
    rows = duckdb_spatial(f"SELECT {cols} FROM read_parquet('{native}') ORDER BY id")
    for k, c in enumerate(GEOMETRIES):
        assert all(same(r[k], w) for r, w in zip(rows, want[c], strict=True)), c
    # Loading the file back keeps every SRID.
    conn.execute("DROP TABLE IF EXISTS geo_native")
    pgarrow.write(url, "geo_native", native, create=True)
    srids = conn.execute("SELECT ST_SRID(pt), ST_SRID(area), ST_SRID(z), ST_SRID(plain) FROM geo_native WHERE id = 1").fetchone()
    assert srids == (4326, 3857, 32633, 0)
    conn.execute("DROP TABLE geo_native")
    with pytest.raises(pgarrow.UsageError, match="geo_types"):
        pgarrow.read_arrow(url, f"SELECT * FROM {geo_table}", geo_types=True)


def test_arrow_ipc_and_memory_carry_geoarrow_wkb_with_the_crs(url, conn, geo_table, tmp_path):
    table = pgarrow.read_arrow(url, f"SELECT * FROM {geo_table} ORDER BY id")
    meta = table.schema.field("area").metadata
    assert meta[b"ARROW:extension:name"] == b"geoarrow.wkb"
    assert json.loads(meta[b"ARROW:extension:metadata"]) == {"crs": "EPSG:3857", "crs_type": "authority_code"}
    route = json.loads(table.schema.field("route").metadata[b"ARROW:extension:metadata"])
    assert route["edges"] == "spherical"
    # The values are ISO WKB, PostGIS's ST_AsBinary.
    want = [r[0] for r in conn.execute(f"SELECT ST_AsBinary(z, 'NDR') FROM {geo_table} ORDER BY id").fetchall()]
    assert table.column("z").to_pylist() == [None if w is None else bytes(w) for w in want]
    path = tmp_path / "geo.arrow"
    pgarrow.export_file(url, table=geo_table, path=path)
    with pa.ipc.open_file(path) as f:
        field = f.schema.field("z")
    assert json.loads(field.metadata[b"ARROW:extension:metadata"])["crs"] == "EPSG:32633"
    frame = geopandas.GeoDataFrame.from_arrow(table, geometry="area")
    assert frame.crs.to_epsg() == 3857


def test_laid_out_files_are_geoparquet_each(url, conn, geo_table, tmp_path):
    out = tmp_path / "laid"
    pgarrow.export_dataset(url, table=geo_table, output_dir=out, files_by=["id"])
    files = sorted(out.rglob("*.parquet"))
    assert len(files) == 4
    for f in files:
        geo = json.loads(pq.read_metadata(f).metadata[b"geo"])
        assert geo["columns"]["area"]["crs"]["id"]["code"] == 3857
    first = json.loads(pq.read_metadata(out / "id=1" / files[0].name).metadata[b"geo"])
    # Each file's own geometries: id 1's point only.
    assert first["columns"]["pt"]["bbox"] == [13.4, 52.5, 13.4, 52.5]


def test_geoparquet_loads_into_postgis_with_its_srid(url, conn, geo_table, tmp_path):
    # pgarrow's own file, into a table it creates: the declared types come back, the
    # unconstrained column's SRID with its values.
    path = tmp_path / "geo.parquet"
    pgarrow.export_file(url, table=geo_table, path=path)
    conn.execute("DROP TABLE IF EXISTS geo_back")
    pgarrow.write(url, "geo_back", path, create=True)
    cols = ", ".join(f"ST_AsEWKT({c})" for c in GEOMETRIES)
    back = conn.execute(f"SELECT id, {cols} FROM geo_back ORDER BY id").fetchall()
    src = conn.execute(f"SELECT id, {cols} FROM {geo_table} ORDER BY id").fetchall()
    assert back == src

    # GeoPandas' file (PROJJSON CRS in its `geo` metadata, no PostgreSQL types): geometry
    # columns created, the SRID kept.
    frame = geopandas.GeoDataFrame(
        {"id": [1, 2]},
        geometry=[shapely.Point(500000, 4649776), shapely.LineString([(0, 0), (1, 1)])],
        crs="EPSG:32633",
    )
    theirs = tmp_path / "theirs.parquet"
    frame.to_parquet(theirs)
    conn.execute("DROP TABLE IF EXISTS geo_theirs")
    pgarrow.write(url, "geo_theirs", theirs, create=True)
    rows = conn.execute("SELECT id, ST_AsEWKT(geometry) FROM geo_theirs ORDER BY id").fetchall()
    assert rows == [(1, "SRID=32633;POINT(500000 4649776)"), (2, "SRID=32633;LINESTRING(0 0,1 1)")]
    kind = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'geo_theirs'::regclass AND attname = 'geometry'"
    ).fetchone()[0]
    assert kind == "geometry"


def test_arrow_ipc_from_another_writer_loads_with_the_srid_its_projjson_names(url, conn, tmp_path):
    # GeoArrow as other writers put it: the CRS a PROJJSON object (pyproj's own), with an
    # EPSG id, or OGC's CRS84 (PostGIS's 4326, longitude first); an Arrow IPC file, not
    # GeoParquet, so no `geo` metadata helps.
    import pyproj

    def field(name, crs):
        meta = {"ARROW:extension:name": "geoarrow.wkb", "ARROW:extension:metadata": json.dumps({"crs": crs})}
        return pa.field(name, pa.binary(), metadata=meta)

    utm = pyproj.CRS.from_epsg(32633).to_json_dict()
    crs84 = pyproj.CRS("OGC:CRS84").to_json_dict()
    schema = pa.schema([pa.field("id", pa.int32()), field("utm", utm), field("lonlat", crs84)])
    table = pa.table(
        [
            pa.array([1], pa.int32()),
            pa.array([shapely.Point(500000, 4649776).wkb], pa.binary()),
            pa.array([shapely.Point(13.4, 52.5).wkb], pa.binary()),
        ],
        schema=schema,
    )
    path = tmp_path / "theirs.arrow"
    with pa.ipc.new_file(path, schema) as w:
        w.write_table(table)
    conn.execute("DROP TABLE IF EXISTS geo_ipc")
    pgarrow.write(url, "geo_ipc", path, create=True)
    row = conn.execute("SELECT ST_AsEWKT(utm), ST_AsEWKT(lonlat) FROM geo_ipc").fetchone()
    assert row == ("SRID=32633;POINT(500000 4649776)", "SRID=4326;POINT(13.4 52.5)")
    conn.execute("DROP TABLE geo_ipc")


def test_mixed_srids_and_measures_are_refused_by_name(url, conn, geo_table):
    conn.execute("DROP TABLE IF EXISTS geo_mixed")
    conn.execute(
        "CREATE TABLE geo_mixed (id int, g geometry); "
        "INSERT INTO geo_mixed VALUES (1, 'SRID=4326;POINT(1 2)'), (2, 'SRID=3857;POINT(3 4)')"
    )
    with pytest.raises(pgarrow.DecodeError) as e:
        pgarrow.read_arrow(url, "SELECT * FROM geo_mixed ORDER BY id")
    text = str(e.value)
    assert "SRID 3857 in a column of SRID 4326" in text and '"g"' in text, text
    with pytest.raises(pgarrow.DecodeError) as e:
        pgarrow.read_arrow(url, "SELECT 1 AS id, 'POINT M (1 2 3)'::geometry AS g")
    assert "M values" in str(e.value) and "ST_Force2D" in str(e.value)


def test_bbox_covering_columns_hold_each_values_box_and_filter_in_geopandas(url, conn, geo_table, tmp_path):
    path = tmp_path / "covered.parquet"
    pgarrow.export_file(url, table=geo_table, path=path, geo_bbox=True, row_group_rows=1)
    geo = json.loads(pq.read_metadata(path).metadata[b"geo"])
    for c in GEOMETRIES:
        assert geo["columns"][c]["covering"] == {
            "bbox": {k: [f"{c}_bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}
        }, c
    table = pq.read_table(path)
    assert table.column_names == ["id", *GEOMETRIES, *(f"{c}_bbox" for c in GEOMETRIES)]
    # Each value's box as PostGIS computes it; NULL for NULL and empty geometries.
    for c in GEOMETRIES:
        want = conn.execute(
            f"SELECT CASE WHEN {c} IS NULL OR ST_IsEmpty({c}::geometry) THEN NULL ELSE "
            f"ARRAY[ST_XMin({c}::geometry), ST_YMin({c}::geometry), ST_XMax({c}::geometry), "
            f"ST_YMax({c}::geometry)] END FROM {geo_table} ORDER BY id"
        ).fetchall()
        got = [None if b is None else [b["xmin"], b["ymin"], b["xmax"], b["ymax"]] for b in table[f"{c}_bbox"].to_pylist()]
        assert got == [w[0] for w in want], c
    # The statistics readers skip by: row group 0 (id 1) has pt's box of Berlin. (DuckDB's
    # view: pyarrow 26 ignores the min and max of doubles in files whose column order is
    # IEEE 754's total order, which the parquet crate writes for every float column.)
    import duckdb

    stats = duckdb.sql(
        f"SELECT path_in_schema, stats_min_value, stats_max_value FROM parquet_metadata('{path}') "
        "WHERE row_group_id = 0 AND path_in_schema LIKE 'pt_bbox%' ORDER BY column_id"
    ).fetchall()
    assert stats == [
        ("pt_bbox, xmin", "13.4", "13.4"),
        ("pt_bbox, ymin", "52.5", "52.5"),
        ("pt_bbox, xmax", "13.4", "13.4"),
        ("pt_bbox, ymax", "52.5", "52.5"),
    ], stats
    # GeoPandas filters by the covering: only the point in Berlin's box.
    frame = geopandas.read_parquet(path, bbox=(13, 52, 14, 53))
    assert list(frame["id"]) == [1]
    # Loading the file leaves the covering out: the table gets the source's columns.
    conn.execute("DROP TABLE IF EXISTS geo_covered")
    pgarrow.write(url, "geo_covered", path, create=True)
    cols = [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'geo_covered'::regclass AND attnum > 0 ORDER BY attnum"
    ).fetchall()]
    assert cols == ["id", *GEOMETRIES]
    ewkt = ", ".join(f"ST_AsEWKT({c})" for c in GEOMETRIES)
    back = conn.execute(f"SELECT id, {ewkt} FROM geo_covered ORDER BY id").fetchall()
    assert back == conn.execute(f"SELECT id, {ewkt} FROM {geo_table} ORDER BY id").fetchall()
    conn.execute("DROP TABLE geo_covered")


def test_bbox_covering_is_refused_where_it_cannot_be(url, conn, geo_table, tmp_path):
    # A column already has the covering's name.
    with pytest.raises(pgarrow.UsageError, match='"pt_bbox"'):
        pgarrow.export_file(
            url, query=f"SELECT pt, 1 AS pt_bbox FROM {geo_table}", path=tmp_path / "x.parquet", geo_bbox=True
        )
    assert not (tmp_path / "x.parquet").exists()
    # Arrow in memory has no covering.
    with pytest.raises(pgarrow.UsageError, match="geo_bbox"):
        pgarrow.read_arrow(url, f"SELECT * FROM {geo_table}", geo_bbox=True)
