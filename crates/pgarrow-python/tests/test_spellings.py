"""The Python API's spellings: each old one still works for a release, warning which new one to
call and giving the same result; results are plain dicts of the keys their TypedDicts
declare, built without JSON text; and a wrong string choice is a UsageError (a ValueError)
naming the parameter and the choices, before anything connects."""

import json
import os
import typing
import uuid
import warnings
from urllib.parse import urlparse, urlunparse

import pyarrow.parquet as pq
import pytest

import pgarrow
from pgarrow import _typing

TABLE = """
DROP TABLE IF EXISTS sp_orders;
CREATE TABLE sp_orders AS SELECT g AS id, g * 2 AS amount FROM generate_series(1, 500) g;
"""


def deprecated(new: str):
    """The one DeprecationWarning a call gives, which names `new`."""
    return pytest.warns(DeprecationWarning, match=rf"call pgarrow\.{new}\(")


def same(old: dict, new: dict) -> None:
    """The same statistics, but for timings, memory and paths."""
    varying = (
        "_s", "phases", "peak_rss", "in_flight_peak", "written", "manifest", "output_dir", "snapshot", "wal_lsn", "files",
        "state",
    )
    keep = lambda d: {k: v for k, v in d.items() if not k.endswith(varying) and k not in varying}
    assert keep(old) == keep(new)
    assert list(old) == list(new), "the keys in the same order"


def test_the_deprecated_export_is_importable_but_not_listed():
    from pgarrow import export

    assert export is pgarrow.export
    assert "export" not in pgarrow.__all__
    assert all(hasattr(pgarrow, name) for name in pgarrow.__all__)


def test_export_into_a_file_still_works_and_warns(url, conn, tmp_path):
    conn.execute(TABLE)
    with deprecated("export_file"):
        old = pgarrow.export(url, "sp_orders", tmp_path / "old.parquet", compression="snappy")
    new = pgarrow.export_file(url, "sp_orders", tmp_path / "new.parquet", compression="snappy")
    same(old, new)
    assert pq.read_table(tmp_path / "old.parquet").equals(pq.read_table(tmp_path / "new.parquet"))


def test_export_into_a_directory_still_works_and_warns(url, conn, tmp_path):
    conn.execute(TABLE)
    with deprecated("export_dataset"):
        old = pgarrow.export(url, "sp_orders", output_dir=tmp_path / "old", partitions=2)
    new = pgarrow.export_dataset(url, "sp_orders", tmp_path / "new", partitions=2)
    same(old, new)
    assert old["manifest"] == os.fspath(tmp_path / "old" / "_manifest.json")


def test_export_of_patterns_still_works_and_warns(url, conn, tmp_path):
    conn.execute(TABLE)
    with deprecated("export_tables"):
        old = pgarrow.export(url, table="sp_orders", output_dir=tmp_path / "old")
    new = pgarrow.export_tables(url, tmp_path / "new", table="sp_orders")
    same(old, new)
    assert [f["path"] for f in old["files"]] == [f["path"] for f in new["files"]]
    # Mixed kinds are refused as they were, before warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(pgarrow.UsageError, match="without a query or path"):
            pgarrow.export(url, "sp_orders", table="sp_orders", output_dir=tmp_path / "x")


def test_incremental_export_still_works_and_warns(url, conn, tmp_path):
    conn.execute(TABLE)
    with deprecated("export_incremental"):
        old = pgarrow.export(url, "sp_orders", tmp_path / "old.parquet", incremental_by="id", state=tmp_path / "old.json")
    new = pgarrow.export_incremental(url, "sp_orders", by="id", state=tmp_path / "new.json", path=tmp_path / "new.parquet")
    same(old, new)
    assert (old["run"], old["first"], old["rows"]) == (1, True, 500)
    assert json.loads((tmp_path / "old.json").read_text())["column"] == "id"


def test_replication_slot_export_still_works_and_warns(url, conn, tmp_path):
    # The test cluster refuses replication connections: the same error either way.
    conn.execute(TABLE)
    with deprecated("export_with_slot"):
        with pytest.raises(pgarrow.Error, match="wal_level must be logical|REPLICATION attribute"):
            pgarrow.export(url, "sp_orders", tmp_path / "x.parquet", replication_slot="sp_slot")
    with pytest.raises(pgarrow.Error, match="wal_level must be logical|REPLICATION attribute"):
        pgarrow.export_with_slot(url, "sp_orders", tmp_path / "x.parquet", slot="sp_slot")
    assert not (tmp_path / "x.parquet").exists()


def test_changes_to_with_to_still_works_and_warns(tmp_path):
    # The old keyword is taken, and warned about, before anything connects.
    with deprecated("changes_to"):
        with pytest.raises(pgarrow.UsageError, match="format"):
            pgarrow.changes_to("postgresql://nobody@127.0.0.1:1/none", tmp_path, slot="s", publication="p", to="csv")
    with pytest.raises(pgarrow.UsageError, match="not both"):
        pgarrow.changes_to(None, tmp_path, slot="s", publication="p", to="arrow", format="arrow")


@pytest.fixture
def lakes(url, conn, tmp_path):
    """A new DuckLake catalog database, a new Iceberg catalog database, and a directory for
    the files: {"ducklake": URL, "iceberg": URL, "dir": path}."""
    names = [f"sp_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("ducklake", "iceberg")]
    for name in names:
        conn.execute(f"CREATE DATABASE {name}")
    u = urlparse(url)
    ducklake, iceberg = (urlunparse(u._replace(path=f"/{name}")) for name in names)
    yield {"ducklake": ducklake, "iceberg": iceberg, "dir": tmp_path}
    for name in names:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def lake_table(function: str, lakes: dict, name: str) -> dict:
    """The keywords of a new lake table `name` for `function`, by their new names."""
    if function == "export_ducklake":
        return {"ducklake": lakes["ducklake"], "data_path": str(lakes["dir"] / "ducklake"), "lake_table": name}
    if function == "export_iceberg":
        return {"iceberg": lakes["iceberg"], "warehouse": str(lakes["dir"] / "wh"), "lake_table": f"sp.{name}"}
    return {"delta": str(lakes["dir"] / name)}


def renamed(old: str, new: str, function: str):
    """The DeprecationWarning of `function`'s keyword `old`, which names `new`."""
    return pytest.warns(
        DeprecationWarning, match=rf"pgarrow\.{function}\({old}=\.\.\.\) is deprecated .* call pgarrow\.{function}\({new}="
    )


def same_lake_export(old: dict, new: dict) -> None:
    """Two exports of sp_orders into new lake tables of one format: the same statistics, but
    for the table, its commit and the files' names."""
    assert (old["rows"], old["created"], old["format"]) == (new["rows"], new["created"], new["format"]) == (
        500, True, new["format"])
    assert list(old) == list(new), "the keys in the same order"


@pytest.mark.parametrize(
    "function, old, new",
    [("export_ducklake", "catalog", "ducklake"), ("export_iceberg", "catalog", "iceberg"), ("export_delta", "location", "delta")],
)
def test_a_lake_exports_old_name_of_its_lake_table_still_works_and_warns(url, conn, lakes, function, old, new):
    # catalog= (export_ducklake, export_iceberg) and location= (export_delta) are now named as
    # the CLI's --ducklake / --iceberg / --delta and mirror's keywords name the lake table.
    conn.execute(TABLE)
    export = getattr(pgarrow, function)
    target = lake_table(function, lakes, "old")
    target[old] = target.pop(new)
    with renamed(old, new, function):
        before = export(url, table="sp_orders", **target)
    after = export(url, table="sp_orders", **lake_table(function, lakes, "new"))
    same_lake_export(before, after)
    # Both names at once: refused before anything connects.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(pgarrow.UsageError, match=rf"give {new}= \({old}= is its old name\), not both"):
            export(None, table="sp_orders", **lake_table(function, lakes, "x"), **{old: "elsewhere"})


@pytest.mark.parametrize("function", ["export_ducklake", "export_iceberg", "export_delta"])
def test_a_lake_exports_incremental_by_still_works_and_warns(url, conn, lakes, function):
    # incremental_by= is now by=, as export_incremental names the cursor column.
    conn.execute(TABLE)
    export = getattr(pgarrow, function)
    with renamed("incremental_by", "by", function):
        before = export(url, table="sp_orders", incremental_by="id", **lake_table(function, lakes, "old"))
    after = export(url, table="sp_orders", by="id", **lake_table(function, lakes, "new"))
    same_lake_export(before, after)
    assert (before["first_run"], before["incremental"]["run"]) == (after["first_run"], after["incremental"]["run"]) == (
        True, 1)
    with pytest.raises(pgarrow.UsageError, match="not both"):
        export(None, table="sp_orders", by="id", incremental_by="id", **lake_table(function, lakes, "x"))
    # A run's options without a run name by=.
    with pytest.raises(pgarrow.UsageError, match="options of by="):
        export(None, table="sp_orders", since="1", **lake_table(function, lakes, "x"))


def test_results_are_dicts_with_their_typed_keys(url, conn, tmp_path):
    conn.execute(TABLE)
    stats = pgarrow.export_file(url, "sp_orders", tmp_path / "a.parquet")
    assert type(stats) is dict
    assert set(typing.get_type_hints(_typing.ExportStats)) <= set(stats)
    assert set(typing.get_type_hints(_typing.Phases)) == set(stats["phases"])
    assert isinstance(stats["rows"], int) and isinstance(stats["total_s"], float)
    assert stats["losses"] == {}

    conn.execute("DROP TABLE IF EXISTS sp_back; CREATE TABLE sp_back (id int, amount int)")
    loaded = pgarrow.write(url, "sp_back", tmp_path / "a.parquet")
    assert set(typing.get_type_hints(_typing.LoadStats)) == set(loaded)
    copied = pgarrow.copy(url, "sp_orders", into="sp_back")
    assert set(typing.get_type_hints(_typing.CopyStats)) == set(copied)
    assert set(typing.get_type_hints(_typing.ExportStats)) <= set(copied["source"])
    tables = pgarrow.export_tables(url, tmp_path / "t", table="sp_orders")
    assert set(tables) <= set(typing.get_type_hints(_typing.TablesStats))


@pytest.mark.parametrize(
    "call, name, choices",
    [
        (lambda url, tmp: pgarrow.write(url, "sp_back", tmp / "a.parquet", mode="merge"), "mode", "append, replace or upsert"),
        (lambda url, tmp: pgarrow.write(url, "sp_back", tmp / "a.parquet", create_nested="flat"), "create_nested", "json or typed"),
        (lambda url, tmp: pgarrow.write(url, "sp_back", tmp / "a.parquet", nanoseconds="drop"), "nanoseconds", "error or round"),
        (lambda url, tmp: pgarrow.copy(url, "sp_orders", into="x", domains="inline"), "domains", "define or base"),
        (lambda url, tmp: pgarrow.export_file(url, "sp_orders", tmp / "a.parquet", format="csv"), "format", "parquet, arrow"),
        (lambda url, tmp: pgarrow.export_dataset(url, "sp_orders", tmp / "d", format="null"), "format", "parquet, arrow or arrow-stream"),
        (lambda url, tmp: pgarrow.export_incremental(url, "sp_orders", by="id", state=tmp / "s.json", path=tmp / "a.parquet", late_rows="never"), "late_rows", "auto or always"),
        (lambda url, tmp: pgarrow.read_arrow(url, "sp_orders", numeric="money"), "numeric", ""),
        (lambda url, tmp: pgarrow.read_arrow(url, "sp_orders", snapshot="none"), "snapshot", "shared or per-connection"),
        (lambda url, tmp: pgarrow.export_file(url, "sp_orders", tmp / "a.parquet", compression="brotli"), "compression", "zstd"),
        (lambda url, tmp: pgarrow.changes(url, slot="s", publication="p", values="json"), "values", "auto, binary or text"),
    ],
)
def test_a_wrong_choice_names_the_parameter_and_the_choices(url, tmp_path, call, name, choices):
    # Every choice is read by the library's FromStr, as the CLI's flags are: a UsageError
    # (a ValueError too) naming the parameter and the words it takes.
    with pytest.raises(pgarrow.UsageError, match=name) as e:
        call(url, tmp_path)
    assert choices in str(e.value)
    assert not os.listdir(tmp_path), "nothing written"


def test_the_literal_types_name_the_choices_the_engine_takes():
    assert typing.get_args(_typing.LoadMode) == ("append", "replace", "upsert")
    assert typing.get_args(_typing.FileFormat) == ("parquet", "arrow", "arrow-stream")
    assert typing.get_args(_typing.LateRows) == ("auto", "always")
    assert typing.get_args(_typing.Values) == ("auto", "binary", "text")
    hints = typing.get_type_hints(pgarrow.write)
    assert hints["mode"] == _typing.LoadMode and hints["nanoseconds"] == _typing.Nanoseconds
