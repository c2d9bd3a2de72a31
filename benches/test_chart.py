#!/usr/bin/env python3
"""Tests of benches/chart.py: `python3 -m pytest benches/test_chart.py`, or `python3
benches/test_chart.py` without pytest."""

import io
import os
import pathlib
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chart  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"

SAMPLE = """# Benchmark results

Some prose, and a table outside the markers that is not charted:

| a | b |
|---|---|
| 1 | 2 |

<!-- e2e:begin -->
## End-to-end (`just bench`)

- Run: 2026-11-22 18:40 UTC, command: `python benches/e2e.py`

### lineitem: 6,000,000 rows, 1,229.1 MB of binary COPY

| tool | output | s (median) | x limit | peak RSS MiB |
|---|---|--:|--:|--:|
| psql COPY binary > /dev/null (the limit) | null | 5.40 | **1.00** | 19 |
| pgarrow --to null | null | 4.82 s | **0.89** | 61 |
| DuckDB <ext> & co -> Arrow batches | null | 4.50 | **0.83x** | 1,115 |
| ConnectorX | null | failed: exit 1: not implemented: interval | | |
| no number, no reason | null | | | |

### wide: 2,000,000 rows

| tool | output | s (median) | x limit | peak RSS MiB |
|---|---|--:|--:|--:|
| psql COPY binary > /dev/null (the limit) | null | 2,720 ms | 1.00 | 19 |
| pgarrow --to parquet | parquet (126 MiB) | 2.26 | 0.83 | 72 |
<!-- e2e:end -->

<!-- memory:begin -->
## Memory

| rows | tool | s | x limit | client CPU s | peak RSS MiB | output |
|--:|---|--:|--:|--:|--:|--:|
| 2,000,000 | psql COPY binary > /dev/null (the limit) | 1.9 | 1.00 | 0.5 | **19** |  |
| 2,000,000 | pgarrow --to parquet (zstd 3) | 1.9 | 1.01 | 1.6 | **146** | 46 MiB |
| 10,000,000 | psql COPY binary > /dev/null (the limit) | 8.6 | 1.00 | 3.1 | **19** |  |
| 10,000,000 | pgarrow --to parquet (zstd 3) | 8.4 | 0.99 | 6.7 | **0.15 GiB** | 232 MiB |
<!-- memory:end -->

<!-- notes:begin -->
## Notes

Only prose here, no table.
<!-- notes:end -->

<!-- custom:begin -->
## Something new

| case | time (s) | vs first |
|---|--:|--:|
| first | 2.0 | 1.00 |
| pgarrow second | 1.0 | 0.50 |
<!-- custom:end -->
"""


def write_sample(tmp_path):
    path = pathlib.Path(tmp_path) / "RESULTS.md"
    path.write_text(SAMPLE, encoding="utf-8")
    return path


def test_parse_number():
    p = chart.parse_number
    assert p("12.3 s") == (12.3, "s", "12.3")
    assert p("0.81x") == (0.81, "x", "0.81")
    assert p("**0.89**") == (0.89, None, "0.89")
    assert p("1,229.1 MB") == (1229.1, "MB", "1,229.1")
    assert p("177 MiB") == (177.0, "MiB", "177")
    assert p("0.624 (pgarrow's run 22.0x faster)")[0] == 0.624
    assert p("60,000 rows") == (60000.0, None, "60,000")
    for cell in ("", "failed: exit 1", "2.64-2.72", "2026-11-22", "12abc", "-", "null"):
        assert p(cell) is None, cell
    assert chart.in_unit(p("2,720 ms"), "s") == 2.72
    assert chart.in_unit(p("0.15 GiB"), "MiB") == 0.15 * 1024
    assert chart.in_unit(p("3 MB"), "s") is None


def test_sections_and_tables():
    found = chart.sections(SAMPLE)
    assert list(found) == ["e2e", "memory", "notes", "custom"]
    title, run, tables = chart.parse_body(found["e2e"])
    assert title == "End-to-end (just bench)"
    assert run == "2026-11-22 18:40 UTC"
    assert [t["heading"] for t in tables] == ["lineitem: 6,000,000 rows, 1,229.1 MB of binary COPY", "wide: 2,000,000 rows"]
    assert tables[0]["header"][2] == "s (median)"
    assert len(tables[0]["rows"]) == 5


def test_bars_per_row():
    c = chart.build_chart("e2e", chart.sections(SAMPLE)["e2e"])
    assert len(c["panels"]) == 2
    lineitem, wide = c["panels"]
    assert lineitem["title"].startswith("lineitem")
    labels = [b["label"] for b in lineitem["bars"]]
    # The row with neither a number nor a reason is left out; the failed one says so.
    assert labels == ["psql COPY binary > /dev/null (the limit)", "pgarrow --to null",
                      "DuckDB <ext> & co \u2192 Arrow batches", "ConnectorX"]
    assert [b.get("value") for b in lineitem["bars"]] == [5.40, 4.82, 4.50, None]
    assert lineitem["bars"][3]["missing"] == "failed"
    assert [b["kind"] for b in lineitem["bars"]] == ["baseline", "pgarrow", "peer", "peer"]
    assert [b.get("ratio") for b in lineitem["bars"]] == ["1.00\u00d7", "0.89\u00d7", "0.83\u00d7", None]
    assert lineitem["bars"][1]["text"] == "4.82 s"
    # Milliseconds in a column of seconds.
    assert [b["value"] for b in wide["bars"]] == [2.72, 2.26]
    assert "Lower is better" in c["footnote"] and "section e2e" in c["footnote"]


def test_memory_groups_by_rows():
    c = chart.build_chart("memory", chart.sections(SAMPLE)["memory"])
    assert [p["title"] for p in c["panels"]] == ["2,000,000 rows", "10,000,000 rows"]
    assert [b["value"] for b in c["panels"][0]["bars"]] == [19, 146]
    assert c["panels"][1]["bars"][1]["value"] == 0.15 * 1024
    assert c["unit"] == "MiB"


def test_unknown_section_with_times():
    c = chart.build_chart("custom", chart.sections(SAMPLE)["custom"])
    bars = c["panels"][0]["bars"]
    assert [(b["label"], b["value"], b["kind"]) for b in bars] == [("first", 2.0, "baseline"), ("pgarrow second", 1.0, "pgarrow")]


def test_svg_is_well_formed():
    c = chart.build_chart("e2e", chart.sections(SAMPLE)["e2e"])
    svg = chart.render_svg(c)
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == SVG + "svg"
    assert root.get("width") == "720"
    background = root.find(SVG + "rect")
    assert background.get("fill") == "#ffffff" and background.get("width") == "720"
    bars = [r for r in root.iter(SVG + "rect") if r.get("class") == "bar"]
    assert len(bars) == 3 + 2  # one per row with a number
    texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
    assert "DuckDB <ext> & co \u2192 Arrow batches" in texts  # escaped, and read back intact
    assert any(t.startswith("4.82 s") and t.endswith("0.89\u00d7") for t in texts)
    assert "failed" in texts
    # Nothing past the right edge: every bar ends inside the chart.
    assert all(float(r.get("x")) + float(r.get("width")) <= 720 - chart.PAD for r in bars)


def test_draw_skips_what_it_cannot_chart(tmp_path):
    results = write_sample(tmp_path)
    out = pathlib.Path(tmp_path) / "out"
    log = io.StringIO()
    written = chart.draw(str(results), str(out), log=log)
    assert sorted(os.path.basename(p) for p in written) == ["custom.svg", "e2e.svg", "memory.svg"]
    warnings = log.getvalue().splitlines()
    assert len(warnings) == 1 and "section notes" in warnings[0], warnings
    for path in written:
        ET.parse(path)
    # The default: charts/ beside the results file; one section.
    written = chart.draw(str(results), names=["memory"], log=log)
    assert written == [str(pathlib.Path(tmp_path) / "charts" / "memory.svg")]


def test_command_line(tmp_path):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chart.py")
    results = write_sample(tmp_path)
    out = pathlib.Path(tmp_path) / "svg"
    r = subprocess.run([sys.executable, script, "--results", str(results), "--out-dir", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "notes" in r.stderr
    assert sorted(os.listdir(out)) == ["custom.svg", "e2e.svg", "memory.svg"]
    r = subprocess.run([sys.executable, script, "--results", str(results), "--out-dir", str(out), "--section", "e2e"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip().endswith("e2e.svg"), r
    r = subprocess.run([sys.executable, script, "--results", str(pathlib.Path(tmp_path) / "missing.md")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "missing.md" in r.stderr


def test_every_section_of_results_md(tmp_path):
    """The real RESULTS.md: every section charted, no warning."""
    log = io.StringIO()
    written = chart.draw(chart.RESULTS, str(tmp_path), log=log)
    assert log.getvalue() == ""
    with open(chart.RESULTS, encoding="utf-8") as f:
        assert len(written) == len(chart.sections(f.read()))


if __name__ == "__main__":
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                if fn.__code__.co_argcount:
                    with tempfile.TemporaryDirectory() as tmp:
                        fn(tmp)
                else:
                    fn()
                print(f"ok   {name}")
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    sys.exit(1 if failed else 0)
