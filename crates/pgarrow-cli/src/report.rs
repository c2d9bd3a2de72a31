//! What the binary prints: the schema of `pgarrow schema`, the progress bar, the summary line
//! and the statistics table.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgarrow::io::{Format, Output};
use pgarrow::{DescribedSource, ExportStats};

pub(crate) fn render_schema(plan: &DescribedSource) -> String {
    let rows: Vec<[String; 4]> = plan
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let arrow = short_type(plan.schema.field(i).data_type());
            let mut notes = Vec::new();
            match (c.cast, c.kind.extension_name()) {
                (Some(cast), _) => notes.push(format!("no binary decoder: sent as {cast}")),
                (None, Some(ext)) => notes.push(format!("extension {ext}")),
                (None, None) => {}
            }
            if c.kind.list_depth_from_data() {
                notes.push("array depth from the data".to_owned());
            }
            let flags: Vec<String> = c
                .applicable_policies()
                .iter()
                .map(|p| format!("--{}", p.replace('_', "-")))
                .collect();
            if !flags.is_empty() {
                notes.push(format!("policies: {}", flags.join(" ")));
            }
            let note = notes.join("; ");
            [
                c.column.name.clone(),
                c.column.type_name.clone(),
                arrow,
                note,
            ]
        })
        .collect();
    let headers = ["column", "postgres type", "arrow type", "note"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([headers[i].len()])
            .max()
            .unwrap_or(0)
    };
    let w = [width(0), width(1), width(2)];
    let mut out = String::new();
    let line = |out: &mut String, r: [&str; 4]| {
        let s = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2]
        );
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut out, headers);
    for r in &rows {
        line(&mut out, [&r[0], &r[1], &r[2], &r[3]]);
    }
    out
}

/// An Arrow type without field metadata: `List<Struct<x: Int32, m: Dictionary<Int16, Utf8>>>`.
pub(crate) fn short_type(t: &arrow_schema::DataType) -> String {
    use arrow_schema::DataType as T;
    let fields = |fs: &arrow_schema::Fields| {
        fs.iter()
            .map(|f| format!("{}: {}", f.name(), short_type(f.data_type())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match t {
        T::List(f) | T::LargeList(f) => format!("List<{}>", short_type(f.data_type())),
        T::FixedSizeList(f, n) => format!("FixedSizeList<{}; {n}>", short_type(f.data_type())),
        T::Struct(fs) => format!("Struct<{}>", fields(fs)),
        T::Map(f, _) => match f.data_type() {
            T::Struct(kv) if kv.len() == 2 => format!(
                "Map<{}, {}>",
                short_type(kv[0].data_type()),
                short_type(kv[1].data_type())
            ),
            other => format!("Map<{}>", short_type(other)),
        },
        T::Dictionary(k, v) => format!("Dictionary<{}, {}>", short_type(k), short_type(v)),
        other => other.to_string(),
    }
}

/// What an export did, for the summary line.
pub(crate) struct Summary {
    pub(crate) rows: u64,
    pub(crate) copy_bytes: u64,
    pub(crate) written: u64,
    pub(crate) elapsed: Duration,
}

/// `--stats`: where the time went, phase by phase, and the counts.
pub(crate) fn stats_table(s: &ExportStats) -> String {
    let notes = |phase: &str| match phase {
        "connect" => "connecting and authenticating",
        "describe" => "Parse/Describe of the query, catalog query included",
        "catalog" => "the catalog query (part of describe)",
        "first_byte" => "from sending the COPY to its first data: the server starting the query",
        "read" => "waiting for the socket after that",
        "decode" => "COPY data into Arrow batches",
        "write" => "encoding and writing, on the writer thread (overlaps read and decode)",
        "finish" => "footer, flush, sync and rename",
        _ => "",
    };
    let mut out = String::from("phase        seconds  what\n");
    for (name, d) in s.phases() {
        out.push_str(&format!(
            "{:<11} {:>8.3}  {}\n",
            name.replace('_', " "),
            d.as_secs_f64(),
            notes(name)
        ));
    }
    out.push_str(&format!(
        "{:<11} {:>8.3}  wall time\n",
        "total",
        s.total.as_secs_f64()
    ));
    let mut counts = vec![
        format!("{} rows", group(s.rows)),
        format!("{} batches", group(s.batches)),
        format!("{} of COPY data", human_bytes(s.bytes)),
    ];
    if let Some(w) = s.written {
        counts.push(format!("{} written", human_bytes(w)));
    }
    if let Some(rss) = s.peak_rss {
        counts.push(format!("peak memory {}", human_bytes(rss)));
    }
    if !s.losses.is_empty() {
        counts.push(format!("{} lossy conversions", group(s.losses.total())));
    }
    out.push_str(&counts.join(", "));
    out.push('\n');
    out
}

/// Whether a progress bar would show (not quiet, stderr a terminal).
pub(crate) fn progress_shown(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A spinner with a message on stderr (hidden when quiet or not on a terminal); with the
/// number of rows expected, a percentage and the time left too.
pub(crate) fn progress_bar(quiet: bool, expected: Option<u64>) -> ProgressBar {
    if !progress_shown(quiet) {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(expected, ProgressDrawTarget::stderr());
    let template = match expected {
        Some(_) => "{spinner} {prefix}{percent:>3}% {msg}, {eta} left",
        None => "{spinner} {prefix}{msg}",
    };
    pb.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message("running the query...");
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Moves `bar` to `rows` (of an estimated total, which grows when the estimate was short).
pub(crate) fn advance(bar: &ProgressBar, rows: u64, bytes: u64, elapsed: Duration) {
    if let Some(len) = bar.length()
        && rows > len
    {
        bar.set_length(rows);
    }
    bar.set_position(rows);
    bar.set_message(rate_message(rows, bytes, "read", elapsed));
}

/// `N rows, B <done>, R rows/s, T s`: a progress line, short enough for 80 columns with a
/// percentage and the time left.
pub(crate) fn rate_message(rows: u64, bytes: u64, done: &str, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    format!(
        "{} {}, {} {done}, {} rows/s, {:.1} s",
        group(rows),
        plural(rows, "row", "rows"),
        human_bytes(bytes),
        group((rows as f64 / secs) as u64),
        secs
    )
}

/// `one` for 1, else `many`.
pub(crate) fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// `exported 1 row to x.parquet (parquet, 1.2 KiB) in 0.05 s, 20 rows/s; read 33 B from the
/// server (660 B/s)`.
pub(crate) fn summary_line(s: &Summary, format: Format, output: &Output) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let target = match output {
        Output::File(p) => format!("{} ({format}, {})", p.display(), human_bytes(s.written)),
        Output::Remote(r) => format!("{r} ({format}, {})", human_bytes(s.written)),
        Output::Stdout => format!("standard output ({format}, {})", human_bytes(s.written)),
        Output::Discard => "nowhere (--to null)".to_owned(),
    };
    format!(
        "exported {} {} to {target} in {secs:.2} s, {} rows/s; read {} from the server ({}/s)",
        group(s.rows),
        plural(s.rows, "row", "rows"),
        group((s.rows as f64 / secs) as u64),
        human_bytes(s.copy_bytes),
        human_bytes((s.copy_bytes as f64 / secs) as u64),
    )
}

/// 1234567 -> "1,234,567".
pub(crate) fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_grows_when_the_estimate_was_short() {
        let bar = ProgressBar::hidden();
        bar.set_length(10);
        advance(&bar, 4, 100, Duration::from_secs(1));
        assert_eq!((bar.position(), bar.length()), (4, Some(10)));
        advance(&bar, 15, 200, Duration::from_secs(2));
        assert_eq!((bar.position(), bar.length()), (15, Some(15)));
    }

    #[test]
    fn one_row_is_a_row() {
        let s = Summary {
            rows: 1,
            copy_bytes: 33,
            written: 900,
            elapsed: Duration::from_millis(10),
        };
        let line = summary_line(&s, Format::Parquet, &Output::File("x.parquet".into()));
        assert!(
            line.starts_with("exported 1 row to x.parquet (parquet, 900 B)"),
            "{line}"
        );
        assert!(line.contains("read 33 B from the server"), "{line}");
        assert_eq!(
            rate_message(2, 10, "read", Duration::from_secs(1)),
            "2 rows, 10 B read, 2 rows/s, 1.0 s"
        );
    }
}
