//! A running mirror's figures for Prometheus (`--metrics-listen`): the source's WAL position,
//! what the slot confirmed (every table holds the changes before it), each table's last
//! commit, the lag in bytes and seconds, and counts of commits, changes, rows, retries, spills
//! and errors, served in Prometheus' text format on `GET /metrics`.
//!
//! The figures come from the mirror's own progress events, and the positions from the change
//! stream as it moves ([`StreamPositions`]): a scrape while the mirror waits for changes sees
//! the lag fall as the server's keepalives move the slot on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgarrow::{Error, Result};
use pgarrow_changes::StreamPositions;
use pgarrow_protocol::replication::Lsn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::MirrorProgress;

/// The endpoint: its figures, and the task that serves them (ended when it is dropped).
#[derive(Debug)]
pub(crate) struct Metrics {
    figures: Arc<Mutex<Figures>>,
    task: tokio::task::JoinHandle<()>,
    /// Where it listens.
    pub(crate) address: SocketAddr,
}

/// A table's figures.
#[derive(Debug, Default, Clone)]
struct Table {
    /// Its last commit's position and snapshot, and when it was made (Unix seconds).
    lsn: u64,
    snapshot: i64,
    committed_at: f64,
    commits: u64,
}

#[derive(Debug, Default)]
struct Figures {
    slot: String,
    stream: Option<Arc<StreamPositions>>,
    /// As the last checkpoint said them, while no stream is watched.
    source_lsn: u64,
    confirmed_lsn: u64,
    tables: BTreeMap<String, Table>,
    commits: u64,
    changes: u64,
    inserted: u64,
    deleted: u64,
    exported_rows: u64,
    retries: u64,
    spills: u64,
}

impl Metrics {
    /// Listens on `address` (port 0: one the system picks) for the mirror of `slot`.
    ///
    /// # Errors
    /// The address cannot be listened on (in use, not this machine's).
    pub(crate) async fn listen(address: SocketAddr, slot: &str) -> Result<Metrics> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| Error::usage(format!("cannot listen on {address} for metrics: {e}")))?;
        let address = listener.local_addr().unwrap_or(address);
        let figures = Arc::new(Mutex::new(Figures {
            slot: slot.to_owned(),
            ..Figures::default()
        }));
        let task = tokio::spawn(serve(listener, figures.clone()));
        Ok(Metrics {
            figures,
            task,
            address,
        })
    }

    /// Takes in what the mirror reported.
    pub(crate) fn record(&self, event: &MirrorProgress) {
        let Ok(mut f) = self.figures.lock() else {
            return;
        };
        match event {
            MirrorProgress::Exported { rows, .. }
            | MirrorProgress::Reexported { rows, .. }
            | MirrorProgress::Joined { rows, .. } => {
                f.exported_rows += rows;
            }
            MirrorProgress::Committed {
                table,
                lsn,
                changes,
                inserted,
                deleted,
                snapshot,
                ..
            } => {
                f.commits += 1;
                f.changes += changes;
                f.inserted += inserted;
                f.deleted += deleted;
                // `schema.name` as people write it, not quoted for SQL.
                let name = pgarrow::names::TableName::parse(table)
                    .map_or_else(|_| table.clone(), |t| t.to_string());
                let t = f.tables.entry(name).or_default();
                t.lsn = parse_lsn(lsn).unwrap_or(t.lsn);
                t.snapshot = *snapshot;
                t.committed_at = unix_now();
                t.commits += 1;
            }
            MirrorProgress::Checkpoint {
                lsn,
                server_lsn,
                spills,
                ..
            } => {
                f.confirmed_lsn = parse_lsn(lsn).unwrap_or(f.confirmed_lsn);
                f.source_lsn = parse_lsn(server_lsn).unwrap_or(f.source_lsn);
                f.spills = *spills;
            }
            MirrorProgress::Retrying { .. } => f.retries += 1,
            _ => {}
        }
    }

    /// Reads the positions of `stream` from now on (a new stream after a restart replaces
    /// the last).
    pub(crate) fn watch(&self, stream: Arc<StreamPositions>) {
        if let Ok(mut f) = self.figures.lock() {
            f.stream = Some(stream);
        }
    }

    /// The figures as a scrape reads them now.
    #[cfg(test)]
    fn text(&self) -> String {
        self.figures.lock().map(|f| render(&f)).unwrap_or_default()
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `16/B374D848` as a number.
pub(super) fn parse_lsn(text: &str) -> Option<u64> {
    text.parse::<Lsn>().ok().map(|l| l.0)
}

/// A label value as the text format writes it.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The figures in Prometheus' text format (version 0.0.4).
fn render(f: &Figures) -> String {
    let (source, confirmed, committed_at) = match &f.stream {
        Some(s) => (
            s.received().0.max(s.confirmed().0),
            s.confirmed().0,
            s.delivered_commit_time(),
        ),
        None => (f.source_lsn.max(f.confirmed_lsn), f.confirmed_lsn, None),
    };
    let lag_bytes = source.saturating_sub(confirmed);
    let lag_s = super::follow::lag_seconds(lag_bytes, committed_at);
    let slot = format!("slot=\"{}\"", label(&f.slot));
    let mut out = String::new();
    let mut one = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{{{slot}}} {value}");
    };
    one(
        "pgarrow_mirror_source_lsn",
        "gauge",
        "The furthest WAL position the source reported, in bytes.",
        source.to_string(),
    );
    one(
        "pgarrow_mirror_confirmed_lsn",
        "gauge",
        "The position confirmed to the slot: every table holds the changes before it.",
        confirmed.to_string(),
    );
    one(
        "pgarrow_mirror_lag_bytes",
        "gauge",
        "How far behind the source the lake tables are, in bytes of WAL.",
        lag_bytes.to_string(),
    );
    if let Some(s) = lag_s {
        one(
            "pgarrow_mirror_lag_seconds",
            "gauge",
            "How long ago the newest source transaction the tables hold committed, while the \
             source has WAL past it; 0 when it has none.",
            format!("{s:.3}"),
        );
    }
    for (name, help, value) in [
        (
            "commits",
            "Lake commits made (one per table changed per round).",
            f.commits,
        ),
        (
            "changes",
            "Source changes committed into the lake.",
            f.changes,
        ),
        ("rows_inserted", "Rows written.", f.inserted),
        ("rows_deleted", "Rows deleted by position.", f.deleted),
        (
            "exported_rows",
            "Rows exported (first runs, exports again).",
            f.exported_rows,
        ),
        (
            "retries",
            "Failures that may pass tried through (connections cut, services not answering).",
            f.retries,
        ),
        (
            "errors",
            "Failures of the run: each one retried, and the last if it gave up.",
            f.retries,
        ),
        (
            "spills",
            "Key indexes written out past their memory, commits folded in buckets past it.",
            f.spills,
        ),
    ] {
        one(
            &format!("pgarrow_mirror_{name}_total"),
            "counter",
            help,
            value.to_string(),
        );
    }
    let mut per_table = |name: &str, help: &str, value: &dyn Fn(&Table) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (table, t) in &f.tables {
            let _ = writeln!(
                out,
                "{name}{{{slot},table=\"{}\"}} {}",
                label(table),
                value(t)
            );
        }
    };
    per_table(
        "pgarrow_mirror_table_lsn",
        "The source position of the table's last commit this run, in bytes.",
        &|t| t.lsn.to_string(),
    );
    per_table(
        "pgarrow_mirror_table_snapshot",
        "The lake table's snapshot or version made by its last commit.",
        &|t| t.snapshot.to_string(),
    );
    per_table(
        "pgarrow_mirror_table_last_commit_timestamp_seconds",
        "When the table's last commit was made (Unix time).",
        &|t| format!("{:.3}", t.committed_at),
    );
    per_table(
        "pgarrow_mirror_table_commits_total",
        "The table's commits this run.",
        &|t| t.commits.to_string(),
    );
    out
}

/// Answers scrapes until the task is ended.
async fn serve(listener: TcpListener, figures: Arc<Mutex<Figures>>) {
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let figures = figures.clone();
        tokio::spawn(async move {
            // A client that sends nothing is not waited for long.
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(socket, &figures)).await;
        });
    }
}

/// Reads one request and answers it: the figures on `GET /metrics` (or `/`), else 404.
async fn answer(mut socket: TcpStream, figures: &Mutex<Figures>) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 << 10 {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET", "/metrics" | "/") => (
            "200 OK",
            figures.lock().map(|f| render(&f)).unwrap_or_default(),
        ),
        _ => ("404 Not Found", "GET /metrics\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(table: &str, lsn: &str, changes: u64) -> MirrorProgress {
        MirrorProgress::Committed {
            table: table.into(),
            lsn: lsn.into(),
            changes,
            inserted: changes,
            deleted: 1,
            truncated: false,
            snapshot: 7,
            commit_s: 0.1,
            fold_s: 0.0,
            lookup_s: 0.0,
            write_s: 0.0,
            publish_s: 0.0,
            index_s: 0.0,
            index_read_bytes: 0,
            together: 1,
        }
    }

    #[tokio::test]
    async fn a_scrape_reads_the_figures_the_events_gave_in_the_text_format() {
        let m = Metrics::listen("127.0.0.1:0".parse().unwrap(), "s\"1")
            .await
            .unwrap();
        m.record(&committed("public.a", "0/100", 5));
        m.record(&committed("\"public\".\"b\"", "0/200", 3));
        m.record(&MirrorProgress::Checkpoint {
            lsn: "0/200".into(),
            server_lsn: "1/0".into(),
            lag_bytes: 0,
            lag_s: None,
            changes_per_s: 1.0,
            spills: 2,
        });
        m.record(&MirrorProgress::Retrying {
            attempt: 1,
            wait_s: 1.0,
            left_s: 10.0,
            error: "cut".into(),
        });
        // Over HTTP, as Prometheus asks.
        let mut s = TcpStream::connect(m.address).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).await.unwrap();
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
        let body = got.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(body, m.text());
        let value = |name: &str| -> String {
            body.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
                .to_owned()
        };
        assert_eq!(value("pgarrow_mirror_commits_total{"), "2");
        assert_eq!(value("pgarrow_mirror_changes_total{"), "8");
        assert_eq!(value("pgarrow_mirror_retries_total{"), "1");
        assert_eq!(value("pgarrow_mirror_spills_total{"), "2");
        assert_eq!(
            value("pgarrow_mirror_source_lsn{"),
            (1u64 << 32).to_string()
        );
        assert_eq!(value("pgarrow_mirror_confirmed_lsn{"), "512");
        assert_eq!(
            value("pgarrow_mirror_lag_bytes{"),
            ((1u64 << 32) - 512).to_string()
        );
        assert_eq!(
            value("pgarrow_mirror_table_lsn{slot=\"s\\\"1\",table=\"public.b\"}"),
            "512"
        );
        // Behind, and no commit time known: no lag in seconds rather than a wrong one.
        assert!(!body.contains("pgarrow_mirror_lag_seconds{"), "{body}");
        // Every sample has its HELP and TYPE.
        for l in body.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(body.contains(&format!("# TYPE {name} ")), "{name}");
        }
        // Anything else: 404.
        let mut s = TcpStream::connect(m.address).await.unwrap();
        s.write_all(b"GET /other HTTP/1.1\r\n\r\n").await.unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).await.unwrap();
        assert!(got.starts_with("HTTP/1.1 404"), "{got}");
    }

    #[test]
    fn positions_read_as_numbers() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("x"), None);
    }
}
