#!/usr/bin/env python3
"""Bar charts of benches/RESULTS.md: one SVG per section, in benches/charts/<NAME>.svg.

    python3 benches/chart.py                   # every section between <!-- NAME:begin/end --> markers
    python3 benches/chart.py --section e2e     # one
    python3 benches/chart.py --results /tmp/r.md --out-dir /tmp/charts

The benchmark scripts call it themselves: `e2e.write_section` (which engines.py,
incremental.py, changes.py and apply.py use too) redraws a section's chart after writing it.

Each section's Markdown tables become panels of horizontal bars, one bar per row (tool), its
length the section's key measure (wall time, or peak RSS for `memory`), with the value and the
ratio against the section's reference (raw COPY, the subscription, ...) printed at its end.
pgarrow's bars are blue, the reference dark grey, the other tools light grey. The SVG is written
by hand (standard library only), on an explicit white background so that it reads the same in
dark mode. A section this script does not understand is skipped with a one-line warning.
"""

import argparse
import os
import re
import sys
from xml.sax.saxutils import escape, quoteattr

BENCHES = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCHES)
RESULTS = os.path.join(BENCHES, "RESULTS.md")


class Unsupported(Exception):
    """A section (or table) this script cannot chart; the message says why."""


# --- what each section shows ---------------------------------------------------------------
#
# Column names are regular expressions matched (whole, case-insensitive) against the header
# cells with their Markdown removed. A section not listed here gets GENERIC: the first column as
# the label, the first column of times as the bar, an `x ...` / `vs ...` column as the ratio.

LIMIT_READ = "wall time over the limit's (psql reading the same COPY into /dev/null)"
LIMIT_LOAD = "wall time over the limit's (the server reading its own binary COPY file)"

SPECS = {
    "e2e": dict(value=[("s \\(median\\)", None)], unit="s", axis="wall time, s (median)",
                ratio="x limit", ratio_means=LIMIT_READ, baseline=r"\(the limit\)", baseline_name="the limit: raw COPY"),
    "adbc-read": dict(value=[("s \\(median\\)", None)], unit="s", axis="wall time, s (median)",
                      ratio="x limit", ratio_means=LIMIT_READ, baseline=r"\(the limit\)", baseline_name="the limit: raw COPY"),
    "load": dict(value=[("s \\(median\\)", None)], unit="s", axis="wall time, s (median)",
                 ratio="x limit", ratio_means=LIMIT_LOAD, baseline=r"\(the limit\)", baseline_name="the limit: server's own COPY FROM"),
    "adbc-load": dict(value=[("s \\(median\\)", None)], unit="s", axis="wall time, s (median)",
                      ratio="x limit", ratio_means=LIMIT_LOAD, baseline=r"\(the limit\)", baseline_name="the limit: server's own COPY FROM"),
    "memory": dict(label=["tool"], value=[("peak RSS MiB", None)], unit="MiB", axis="peak RSS of the client, MiB",
                   ratio=None, group="rows", group_title="{} rows", shared_scale=True,
                   baseline=r"\(the limit\)", baseline_name="psql's raw COPY"),
    "object-store": dict(value=[("s", None)], unit="s", axis="wall time, s (median)",
                         ratio="x local", ratio_means="wall time over the same case's to or from the local disk",
                         baseline="local file", baseline_name="local file (the reference)",
                         highlight="S3", highlight_name="pgarrow with the S3 emulator"),
    "engines": dict(label=["engine", "reader"], unit="s", axis="wall time, s (median)",
                    value=[("scan s", "scan: every row reaches the engine"), ("parquet s", "written as Parquet")],
                    ratio="peer / pgarrow.*", ratio_split=True, shared_scale=True,
                    ratio_means="the engine's own reader's time over pgarrow's in the same engine",
                    baseline=None, peer_name="the engine's own reader"),
    "incremental": dict(value=[("s \\(median\\)", None)], unit="s", axis="wall time, s (median)",
                        ratio="x full export", ratio_means="wall time over the full export's",
                        highlight=r"^(?!dlt)", baseline_name="full export",
                        relabel=[(r"^full export --table \w+$", r"pgarrow \g<0>"),
                                 (r"^incremental run", "pgarrow incremental run"),
                                 (r"\(--late-rows always: .*\)$", "(--late-rows always)"),
                                 (r"sql_table\(incremental=dlt\.sources\.incremental\('(\w+)'\), backend='(\w+)'\)",
                                  r"sql_table, incremental('\1'), backend '\2',")]),
    "changes": dict(value=[("median \\(s\\)", None)], unit="s", axis="wall time, s (median)",
                    ratio="vs pg_recvlogical", ratio_means="wall time over pg_recvlogical's",
                    baseline_name="pg_recvlogical (the server's own decoding)"),
    "apply": dict(value=[("median \\(s\\)", None)], unit="s", axis="wall time, s (median)",
                  ratio="vs the subscription", ratio_means="wall time over the subscription's",
                  baseline_name="PostgreSQL subscription"),
}

GENERIC = dict(value=None, unit="s", axis="wall time, s", ratio="(x|vs) .*", ratio_means="wall time over the reference's",
               baseline_name="the reference")

# A column of times, for sections without a spec.
TIME_HEADER = re.compile(r"s|wall s|s \(median\)|median \(s\)|(median )?(wall )?time \(?s\)?|seconds", re.I)


# --- Markdown --------------------------------------------------------------------------------


def sections(text):
    """{NAME: body} of every `<!-- NAME:begin -->` ... `<!-- NAME:end -->` section, in order."""
    found = {}
    for m in re.finditer(r"<!--\s*([\w.-]+):begin\s*-->(.*?)<!--\s*\1:end\s*-->", text, re.S):
        found[m.group(1)] = m.group(2)
    return found


def clean(cell):
    """A cell or heading without its Markdown: no bold, no code spans, `->` as an arrow."""
    s = cell.replace("\\|", "|").replace("**", "").replace("__", "").replace("`", "")
    s = s.replace(" -> ", " \u2192 ")
    return " ".join(s.split())


def split_row(line):
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)]


DELIMITER = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def parse_body(body):
    """The section's title (its first heading), run date (`- Run: DATE ...`), and tables: a list of
    dicts with `heading` (the last `###` heading before it, or None), `header` and `rows`."""
    lines = body.splitlines()
    title, heading, run, tables = None, None, None, []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            text = clean(m.group(2))
            if title is None:
                title = text
            else:
                heading = text
            i += 1
            continue
        m = re.match(r"^- Run:\s*([0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9:]+ UTC)?)", line)
        if m and run is None:
            run = m.group(1)
        if line.lstrip().startswith("|") and i + 1 < len(lines) and DELIMITER.match(lines[i + 1].strip()):
            header = [clean(c) for c in split_row(line)]
            rows = []
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = split_row(lines[i])
                rows.append((cells + [""] * len(header))[: len(header)])
                i += 1
            tables.append({"heading": heading, "header": header, "rows": rows})
            continue
        i += 1
    return title, run, tables


# --- numbers ---------------------------------------------------------------------------------

# Each unit's family and its size in the family's base unit.
UNITS = {
    "ms": ("time", 1e-3), "us": ("time", 1e-6), "\u00b5s": ("time", 1e-6), "s": ("time", 1.0),
    "min": ("time", 60.0), "h": ("time", 3600.0),
    "B": ("bin", 1 / 2**20), "KiB": ("bin", 1 / 1024), "MiB": ("bin", 1.0), "GiB": ("bin", 1024.0),
    "kB": ("dec", 1e-3), "KB": ("dec", 1e-3), "MB": ("dec", 1.0), "GB": ("dec", 1e3),
    "x": ("ratio", 1.0), "\u00d7": ("ratio", 1.0), "%": ("percent", 1.0),
}
NUMBER = re.compile(r"[~\u2248]?\s*([-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+)(?:\s*(%|\u00d7|[A-Za-z\u00b5]+))?")


def parse_number(cell):
    """(value, unit, text) of a cell that starts with a number (`12.3 s`, `0.81x`, `**0.89**`,
    `1,229.1 MB`, `177 MiB`, `0.624 (22.0x faster)`), or None. `unit` is None when the cell
    gives none (a word after the number that is not a unit, like `rows`, is not one);
    `text` is the number as the cell writes it. Ranges (`2.64-2.72`) and dates are not numbers."""
    s = clean(cell)
    m = NUMBER.match(s)
    if not m:
        return None
    number, unit = m.group(1), m.group(2)
    end = m.end()
    if unit is not None and unit not in UNITS:
        if s[m.end(1)] not in " \t":  # `12abc`: not a number
            return None
        unit, end = None, m.end(1)
    rest = s[end:]
    if rest and not re.match(r"[\s(,;]", rest):
        return None
    try:
        value = float(number.replace(",", ""))
    except ValueError:
        return None
    return value, unit, number


def in_unit(parsed, unit):
    """The parsed value in `unit` (the column's), or None when its unit is of another kind."""
    value, cell_unit, _ = parsed
    if cell_unit is None or cell_unit == unit:
        return value
    have, want = UNITS.get(cell_unit), UNITS.get(unit)
    if have and want and have[0] == want[0]:
        return value * have[1] / want[1]
    return None


def not_measured(cell):
    """A short reason for a cell that says why there is no number (`failed: ...`, `not
    installed`), or None."""
    s = clean(cell)
    if not s or not s[0].isalpha():
        return None
    return s.split(":", 1)[0][:40]


# --- from a section to panels of bars --------------------------------------------------------


def find_column(header, pattern):
    for i, h in enumerate(header):
        if re.fullmatch(pattern, h, re.I):
            return i
    return None


def build_chart(name, body, source="benches/RESULTS.md"):
    """The chart of one section: {title, panels: [{title, bars}], ...}; raises Unsupported."""
    title, run, tables = parse_body(body)
    if not tables:
        raise Unsupported("no table")
    spec = dict(GENERIC, **SPECS.get(name, {}))
    panels, skipped = [], []
    for table in tables:
        try:
            panels.extend(table_panels(spec, table))
        except Unsupported as e:
            skipped.append(str(e))
    if not panels:
        raise Unsupported(skipped[0] if skipped else "no rows with numbers")
    notes = ["Lower is better."]
    if any(b.get("ratio") for p in panels for b in p["bars"]):
        notes.append(f"\u00d7: {spec['ratio_means']}.")
    notes.append(f"Source: {source}, section {name}" + (f" (run {run})." if run else "."))
    return {
        "name": name,
        "title": title or name,
        "panels": panels,
        "axis": spec["axis"],
        "unit": spec["unit"],
        "shared_scale": spec.get("shared_scale", False),
        "legend": legend(spec, panels),
        "footnote": " ".join(notes),
    }


def legend(spec, panels):
    kinds = {b["kind"] for p in panels for b in p["bars"]}
    names = {"pgarrow": spec.get("highlight_name", "pgarrow"), "baseline": spec["baseline_name"], "peer": spec.get("peer_name", "other tools")}
    return [(k, names[k]) for k in ("pgarrow", "baseline", "peer") if k in kinds]


def table_panels(spec, table):
    header, rows = table["header"], table["rows"]
    # The label: the named columns, or the first column.
    label_cols = [find_column(header, p) for p in spec.get("label", [])] or [0]
    if None in label_cols:
        raise Unsupported(f"no column {spec['label']!r} in {header}")
    values = spec["value"]
    if values is None:
        col = next((i for i, h in enumerate(header) if i not in label_cols and TIME_HEADER.fullmatch(h)
                    and any(parse_number(r[i]) for r in rows)), None)
        if col is None:
            raise Unsupported("no column of times")
        values = [(re.escape(header[col]), None)]
    value_cols = []
    for pattern, panel_title in values:
        col = find_column(header, pattern)
        if col is not None:
            value_cols.append((col, panel_title))
    if not value_cols:
        raise Unsupported(f"no column {', '.join(p for p, _ in values)!r}")
    ratio_col = find_column(header, spec["ratio"]) if spec.get("ratio") else None
    group_col = find_column(header, spec["group"]) if spec.get("group") else None

    groups = {}
    for row in rows:
        key = clean(row[group_col]) if group_col is not None else None
        groups.setdefault(key, []).append(row)

    panels = []
    for key, group_rows in groups.items():
        for n, (col, col_title) in enumerate(value_cols):
            bars = []
            for row in group_rows:
                label = " \u00b7 ".join(clean(row[c]) for c in label_cols)
                for pattern, repl in spec.get("relabel", []):
                    label = re.sub(pattern, repl, label)
                if not label:
                    continue
                bar = {"label": label, "kind": kind_of(spec, label, row, ratio_col)}
                parsed = parse_number(row[col])
                value = in_unit(parsed, spec["unit"]) if parsed else None
                if value is None or value < 0:
                    why = not_measured(row[col])
                    if why is None:
                        continue  # a row without a number or a reason: left out
                    bar["missing"] = why
                else:
                    bar["value"] = value
                    bar["text"] = parsed[2] + " " + (parsed[1] if parsed[1] and parsed[1] not in ("x", "\u00d7") else spec["unit"])
                    ratio = ratio_text(row[ratio_col], n if spec.get("ratio_split") else 0) if ratio_col is not None else None
                    if ratio:
                        bar["ratio"] = ratio
                bars.append(bar)
            if not any("value" in b for b in bars):
                continue
            parts = [p for p in (table["heading"], spec.get("group_title", "{}").format(key) if key is not None else None, col_title) if p]
            panels.append({"title": ": ".join(parts) if parts else None, "bars": bars})
    if not panels:
        raise Unsupported("no rows with numbers")
    return panels


def ratio_text(cell, index):
    parts = clean(cell).split(",")
    if index >= len(parts):
        return None
    parsed = parse_number(parts[index])
    if parsed is None or parsed[1] not in (None, "x", "\u00d7"):
        return None
    return parsed[2] + "\u00d7"


def kind_of(spec, label, row, ratio_col):
    """pgarrow, the reference (baseline) or another tool."""
    if spec.get("baseline"):
        if re.search(spec["baseline"], label, re.I):
            return "baseline"
    elif spec.get("baseline", "") is not None and ratio_col is not None:
        parsed = parse_number(row[ratio_col])
        if parsed and parsed[0] == 1.0:
            return "baseline"
    if re.search(spec.get("highlight", "pgarrow"), label, re.I):
        return "pgarrow"
    return "peer"


# --- SVG -------------------------------------------------------------------------------------

WIDTH = 720
PAD = 20
FONT = "Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
COLOURS = {"pgarrow": "#2563eb", "baseline": "#6b7280", "peer": "#c3c8d0"}
INK, MUTED, GRID, BACKGROUND = "#1f2328", "#57606a", "#e6e8eb", "#ffffff"

# Advance widths (per 1,000 em) of DejaVu Sans for ' ' to '~': wider than Helvetica or Arial,
# so text measured with them fits whichever of those fonts the viewer has.
_CHARS = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
_WIDTHS = [
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636,
    636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775,
    752, 295, 295, 656, 557, 863, 748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390,
    337, 390, 838, 500, 500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,
    635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
]
ADVANCE = dict(zip(_CHARS, _WIDTHS), **{"\u2192": 838, "\u00d7": 838, "\u00b7": 318, "\u2026": 1000, "\u00a0": 318})


def text_width(text, size, bold=False):
    return sum(ADVANCE.get(c, 700) for c in text) / 1000 * size * (1.1 if bold else 1.0)


def wrap(text, width, size, bold=False, max_lines=None):
    """Lines of `text` no wider than `width` px, broken at spaces (or after `,` `(` `=` `/` inside
    a long word); past `max_lines` the last line ends in an ellipsis."""
    pieces = [p for p in re.findall(r"\s+|\(?[^\s,(=/]*[,(=/]?", text) if p]
    lines, line = [], ""
    for piece in pieces:
        candidate = line + piece
        if text_width(candidate.rstrip(), size, bold) <= width or not line.strip():
            line = candidate
        else:
            lines.append(line.rstrip())
            line = piece.lstrip()
    if line.strip():
        lines.append(line.rstrip())
    out = []
    for ln in lines:
        while text_width(ln, size, bold) > width and len(ln) > 1:  # one word wider than the line
            cut = len(ln)
            while cut > 1 and text_width(ln[:cut], size, bold) > width:
                cut -= 1
            out.append(ln[:cut])
            ln = ln[cut:]
        out.append(ln)
    if max_lines and len(out) > max_lines:
        last = out[max_lines - 1]
        while last and text_width(last + "\u2026", size, bold) > width:
            last = last[:-1]
        out = out[: max_lines - 1] + [last.rstrip(" ,(=/") + "\u2026"]
    return out or [""]


def wrap_balanced(text, width, size, bold=False, max_lines=None):
    """`wrap`, with the lines as even as the same number of lines allows (no lone last word)."""
    lines = wrap(text, width, size, bold, max_lines)
    if len(lines) < 2 or (max_lines and len(lines) >= max_lines):
        return lines
    lo, hi = width / len(lines), width
    while hi - lo > 2:
        mid = (lo + hi) / 2
        if len(wrap(text, mid, size, bold)) <= len(lines):
            hi = mid
        else:
            lo = mid
    return wrap(text, hi, size, bold)


def _esc(text):
    return escape(re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text))


def _text(x, y, text, size, fill=INK, anchor="start", weight=None, style=None, cls=None):
    attrs = f'x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}"'
    if anchor != "start":
        attrs += f' text-anchor="{anchor}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    if style:
        attrs += f' font-style="{style}"'
    if cls:
        attrs += f' class="{cls}"'
    return f"<text {attrs}>{_esc(text)}</text>"


def nice_ticks(top):
    """Round tick values from 0 to at most `top`, about five of them."""
    if top <= 0:
        return [0.0]
    raw = top / 5
    mag = 10 ** _floor_log10(raw)
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks, v = [], 0.0
    while v <= top * (1 + 1e-9):
        ticks.append(round(v, 10))
        v += step
    return ticks


def _floor_log10(x):
    n = 0
    while x >= 10:
        x /= 10
        n += 1
    while x < 1:
        x *= 10
        n -= 1
    return n


def fmt_tick(v):
    s = f"{v:,.3f}".rstrip("0").rstrip(".")
    return s or "0"


LABEL_SIZE, VALUE_SIZE, TICK_SIZE = 12, 11.5, 10.5
SEP = "   "  # room between a bar's value and its ratio


def render_svg(chart):
    """The chart as an SVG document (a string)."""
    inner = WIDTH - 2 * PAD
    out = []
    y = PAD

    # Title and legend.
    title_lines = wrap(chart["title"], inner, 17, bold=True)
    for line in title_lines:
        y += 21
        out.append(_text(PAD, y, line, 17, weight="bold"))
    y += 8
    x = PAD
    y += 14
    for kind, name in chart["legend"]:
        out.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="11" height="11" rx="2" fill="{COLOURS[kind]}"/>')
        out.append(_text(x + 16, y, name, 11.5, fill=MUTED))
        x += 16 + text_width(name, 11.5) + 18
    y += 6

    # The label column: as wide as the longest label, at most 46% of the chart (then wrapped).
    label_w = min(max(text_width(b["label"], LABEL_SIZE, bold=b["kind"] == "pgarrow") for p in chart["panels"] for b in p["bars"]),
                  inner * 0.46)
    label_w = max(label_w, 60)
    left = PAD + label_w + 10
    right = WIDTH - PAD

    def annotation(bar):
        return bar["text"] + (SEP + bar["ratio"] if bar.get("ratio") else "")

    def scale_for(bars):
        k = float("inf")
        for b in bars:
            if b.get("value"):
                room = right - left - 6 - text_width(annotation(b), VALUE_SIZE) - 2
                k = min(k, max(room, 20) / b["value"])
        return k if k != float("inf") else 1.0

    shared = scale_for([b for p in chart["panels"] for b in p["bars"]]) if chart["shared_scale"] else None

    for panel in chart["panels"]:
        k = shared or scale_for(panel["bars"])
        y += 14
        if panel["title"]:
            for line in wrap(panel["title"], inner, 13, bold=True):
                y += 16
                out.append(_text(PAD, y, line, 13, weight="bold"))
        y += 8
        rows_top = y
        top = (right - left) / k
        ticks = nice_ticks(top)
        # Rows first into a list, so that the grid lines go under the bars.
        grid, bars = [], []
        for bar in panel["bars"]:
            lines = wrap_balanced(bar["label"], label_w, LABEL_SIZE, bold=bar["kind"] == "pgarrow", max_lines=3)
            h = max(24, 15 * len(lines) + 9)
            mid = y + h / 2
            first = mid - (len(lines) - 1) * 15 / 2 + 4
            for j, line in enumerate(lines):
                bars.append(_text(left - 10, first + j * 15, line, LABEL_SIZE, anchor="end",
                                  weight="bold" if bar["kind"] == "pgarrow" else None))
            if "value" in bar:
                w = bar["value"] * k
                bars.append(
                    f'<rect class="bar" x="{left:.1f}" y="{mid - 7:.1f}" width="{w:.1f}" height="14" rx="1.5" '
                    f'fill="{COLOURS[bar["kind"]]}"><title>{_esc(bar["label"] + ": " + annotation(bar))}</title></rect>')
                # On white, so that a grid or reference line behind the numbers does not cross them.
                bars.append(f'<rect x="{left + w + 4:.1f}" y="{mid - 8:.1f}" width="{text_width(annotation(bar), VALUE_SIZE) + 4:.1f}" '
                            f'height="16" fill="{BACKGROUND}"/>')
                t = f'<text x="{left + w + 6:.1f}" y="{mid + 4:.1f}" font-size="{VALUE_SIZE}" fill="{INK}">{_esc(bar["text"])}'
                if bar.get("ratio"):  # dx: a tspan's leading spaces are dropped
                    t += f'<tspan dx="{text_width(SEP, VALUE_SIZE):.1f}" fill="{MUTED}">{_esc(bar["ratio"])}</tspan>'
                bars.append(t + "</text>")
            else:
                bars.append(_text(left + 4, mid + 4, bar["missing"], VALUE_SIZE, fill=MUTED, style="italic", cls="missing"))
            y += h
        rows_bottom = y
        for v in ticks:
            gx = left + v * k
            grid.append(f'<line x1="{gx:.1f}" y1="{rows_top:.1f}" x2="{gx:.1f}" y2="{rows_bottom:.1f}" stroke="{GRID}" stroke-width="1"/>')
        reference = [b for b in panel["bars"] if b["kind"] == "baseline" and "value" in b]
        if len(reference) == 1:
            rx = left + reference[0]["value"] * k
            grid.append(f'<line x1="{rx:.1f}" y1="{rows_top:.1f}" x2="{rx:.1f}" y2="{rows_bottom:.1f}" '
                        f'stroke="{COLOURS["baseline"]}" stroke-width="1" stroke-dasharray="3 3"/>')
        out.extend(grid)
        out.append(f'<line x1="{left:.1f}" y1="{rows_top:.1f}" x2="{left:.1f}" y2="{rows_bottom:.1f}" stroke="{MUTED}" stroke-width="1"/>')
        out.extend(bars)
        y += 14
        for v in ticks:
            out.append(_text(left + v * k, y, fmt_tick(v), TICK_SIZE, fill=MUTED, anchor="middle"))
        y += 15
        out.append(_text(left + (right - left) / 2, y, chart["axis"], TICK_SIZE, fill=MUTED, anchor="middle"))

    y += 12
    for line in wrap(chart["footnote"], inner, 11):
        y += 15
        out.append(_text(PAD, y, line, 11, fill=MUTED))
    height = int(y + PAD)

    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label={quoteattr(chart["title"])} font-family={quoteattr(FONT)}>\n'
        f"<title>{_esc(chart['title'])}</title>\n"
        f'<rect width="{WIDTH}" height="{height}" fill="{BACKGROUND}"/>\n'
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + head + "\n".join(out) + "\n</svg>\n"


# --- files -----------------------------------------------------------------------------------


def source_name(results):
    rel = os.path.relpath(os.path.abspath(results), ROOT)
    return rel if not rel.startswith("..") else results


def draw(results=RESULTS, out_dir=None, names=None, log=None):
    """Writes `out_dir`/NAME.svg (default: `charts/` beside `results`) for each section of
    `results` (or those in `names`); returns the paths written. A section that cannot be
    charted is a one-line warning on `log` (stderr). Raises OSError when `results` cannot be
    read, KeyError for a name with no section."""
    log = log or sys.stderr
    with open(results, encoding="utf-8") as f:
        found = sections(f.read())
    if out_dir is None:
        out_dir = os.path.join(os.path.dirname(os.path.abspath(results)), "charts")
    for name in names or []:
        if name not in found:
            raise KeyError(f"no section {name!r} in {results} (it has: {', '.join(found) or 'none'})")
    written = []
    for name, body in found.items():
        if names and name not in names:
            continue
        try:
            svg = render_svg(build_chart(name, body, source_name(results)))
        except Exception as e:  # noqa: BLE001  (a chart is never worth a failed benchmark)
            print(f"warning: section {name}: not charted: {e}", file=log)
            continue
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{name}.svg")
        with open(path, "w", encoding="utf-8") as f:
            f.write(svg)
        written.append(path)
    return written


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=RESULTS, help="the Markdown file to read (default benches/RESULTS.md)")
    p.add_argument("--out-dir", help="where the SVGs go (default: charts/ beside the results file)")
    p.add_argument("--section", action="append", metavar="NAME", help="only this section (repeatable)")
    args = p.parse_args()
    try:
        written = draw(args.results, args.out_dir, args.section)
    except (OSError, KeyError) as e:
        sys.exit(f"chart.py: {e.args[0] if isinstance(e, KeyError) else e}")
    for path in written:
        print(source_name(path))


if __name__ == "__main__":
    main()
