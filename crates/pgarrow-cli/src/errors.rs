//! How a failure ends the process: the message (with the spot in the user's query, as psql
//! shows it), and the exit status (see `args::CONNECTION_HELP`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use pgarrow::protocol::ErrorKind as ProtocolKind;

/// The status after a usage error or a connection that could not be made.
pub(crate) const EXIT_USAGE: i32 = 2;

/// The query text as the user gave it, for placing the server's error position.
static QUERY: OnceLock<String> = OnceLock::new();

/// How to name the `--table` the user gave, when it held capitals that SQL folded away.
static TABLE_HINT: OnceLock<String> = OnceLock::new();

/// The signal that interrupted the run (SIGINT unless SIGTERM came).
static SIGNAL: AtomicI32 = AtomicI32::new(libc::SIGINT);

/// Remembers the user's query, to show where in it the server's error points.
pub(crate) fn remember_query(text: &str) {
    let _ = QUERY.set(text.to_owned());
}

/// Remembers a `--table` argument: one with unquoted capitals gets a hint if the table is
/// not found.
pub(crate) fn remember_table(text: &str) {
    let mut quoted = false;
    let capitals = text.chars().any(|c| {
        if c == '"' {
            quoted = !quoted;
        }
        !quoted && c.is_ascii_uppercase()
    });
    if capitals && !text.contains('"') {
        let quoted: Vec<String> = text.split('.').map(|p| format!("\"{p}\"")).collect();
        let _ = TABLE_HINT.set(format!(
            "hint: unquoted names fold to lower case, as in SQL; for a table named with \
             capitals, quote it: --table '{}'\n",
            quoted.join(".")
        ));
    }
}

/// Remembers which signal stops the run.
pub(crate) fn remember_signal(signal: i32) {
    SIGNAL.store(signal, Ordering::Relaxed);
}

/// Whether the export writes to standard output (where a closed pipe ends it quietly).
static TO_STDOUT: AtomicBool = AtomicBool::new(false);

/// Remembers that the data goes to standard output.
pub(crate) fn remember_stdout() {
    TO_STDOUT.store(true, Ordering::Relaxed);
}

/// The context of an error raised while connecting (whatever its kind: a timeout, a server
/// that hung up during startup): exit status 2.
#[derive(Debug)]
pub(crate) struct Connecting;

impl std::fmt::Display for Connecting {
    // Says nothing: the cause says what failed, and names the server.
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// A command line that asks for something impossible or contradictory: exit status 2.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A usage error.
pub(crate) fn usage(message: &str) -> anyhow::Error {
    Usage(message.to_owned()).into()
}

/// Ctrl-C or SIGTERM stopped the run; what that left.
#[derive(Debug)]
pub(crate) struct Interrupted(pub(crate) &'static str);

impl Interrupted {
    /// An export stopped by a signal.
    pub(crate) fn nothing_written() -> Interrupted {
        Interrupted("no output was written")
    }

    /// A load stopped by a signal.
    pub(crate) fn nothing_loaded() -> Interrupted {
        Interrupted("nothing was loaded (the transaction was rolled back)")
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Prints what `e` says (nothing for a closed pipe) and returns the exit status.
pub(crate) fn report(e: &anyhow::Error) -> i32 {
    if let Some(i) = e.downcast_ref::<Interrupted>() {
        let signal = SIGNAL.load(Ordering::Relaxed);
        let name = if signal == libc::SIGTERM {
            "SIGTERM"
        } else {
            "Ctrl-C"
        };
        eprintln!("pgarrow: interrupted ({name}); {}", i.0);
        return 128 + signal;
    }
    if broken_pipe(e) {
        // The reader of standard output closed it (`| head`): it has what it wanted.
        return 0;
    }
    eprintln!("pgarrow: error: {}", error_line(e));
    if let Some(context) = query_context(e) {
        eprint!("{context}");
    }
    let missing = e
        .chain()
        .filter_map(|c| c.downcast_ref::<pgarrow::Error>())
        .any(|p| p.code() == Some("42P01"));
    if let (true, Some(hint)) = (missing, TABLE_HINT.get()) {
        eprint!("{hint}");
    }
    exit_status(e)
}

/// 2 for usage and connection failures, 1 for the rest.
fn exit_status(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<Connecting>().is_some() {
        return EXIT_USAGE;
    }
    for cause in e.chain() {
        if cause.is::<Usage>() {
            return EXIT_USAGE;
        }
        if cause.is::<clap::Error>() {
            return EXIT_USAGE;
        }
        if let Some(p) = cause.downcast_ref::<pgarrow::protocol::Error>() {
            let connecting = match p.kind() {
                ProtocolKind::Config(_)
                | ProtocolKind::Connect { .. }
                | ProtocolKind::Auth(_)
                | ProtocolKind::Tls { .. } => true,
                // Refused at startup: authentication (28), the connection (08), no such
                // database, too many connections, the server starting or stopping.
                ProtocolKind::Db(db) => {
                    db.code.starts_with("28")
                        || db.code.starts_with("08")
                        || matches!(db.code.as_str(), "3D000" | "53300" | "57P03")
                }
                _ => false,
            };
            if connecting {
                return EXIT_USAGE;
            }
        }
    }
    1
}

/// Whether `e` comes from writing the data into a pipe whose reader has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    TO_STDOUT.load(Ordering::Relaxed) && pipe_closed(e)
}

fn pipe_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause.to_string().contains("Broken pipe (os error 32)")
    })
}

/// An error and its causes on one line (a server message or DETAIL may hold line breaks):
/// each cause follows after ": " unless the text so far already says it (errors that wrap
/// another often print it too).
pub(crate) fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text: Vec<&str> = text.split(['\n', '\r']).map(str::trim).collect();
        let text = text.join(" ");
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

/// psql's `LINE n:` and caret under the spot the server's error points at, in the query as
/// the user wrote it.
fn query_context(e: &anyhow::Error) -> Option<String> {
    let position = e
        .chain()
        .find_map(|c| c.downcast_ref::<pgarrow::Error>())
        .and_then(pgarrow::Error::query_position)?;
    caret(QUERY.get()?, position)
}

/// The line holding character `position` (from 1) of `text`, and a caret under it.
fn caret(text: &str, position: u32) -> Option<String> {
    let index = usize::try_from(position).ok()?.checked_sub(1)?;
    // One past the last character: "syntax error at end of input".
    let offset = match text.char_indices().nth(index) {
        Some((offset, _)) => offset,
        None if index == text.chars().count() => text.len(),
        None => return None,
    };
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let number = text[..offset].matches('\n').count() + 1;
    let line = text[line_start..line_end].trim_end_matches('\r');
    let prefix = format!("LINE {number}: ");
    let pad: String = text[line_start..offset]
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(format!(
        "{prefix}{line}\n{}{pad}^\n",
        " ".repeat(prefix.len())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_holds_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let e = anyhow::Error::new(io).context("cannot write the statistics to /x.json");
        assert_eq!(
            error_line(&e),
            "cannot write the statistics to /x.json: Permission denied"
        );
        // A wrapper that prints its cause itself: the cause is not repeated.
        let inner = anyhow::anyhow!("server said\nDETAIL: no");
        let e = inner.context("export failed: server said DETAIL: no");
        assert_eq!(error_line(&e), "export failed: server said DETAIL: no");
    }

    #[test]
    fn the_caret_sits_under_the_position_on_its_line() {
        let q = "select 1 as a,\n  2 frm t";
        // "t" is character 24.
        assert_eq!(
            caret(q, 24).unwrap(),
            "LINE 2:   2 frm t\n                ^\n"
        );
        assert_eq!(caret("selec 1", 1).unwrap(), "LINE 1: selec 1\n        ^\n");
        // Characters, not bytes; tabs kept so the caret lines up.
        assert_eq!(
            caret("select 'é',\tx", 13).unwrap(),
            "LINE 1: select 'é',\tx\n                   \t^\n"
        );
        assert_eq!(
            caret("select (1", 10).unwrap(),
            "LINE 1: select (1\n                 ^\n"
        );
        assert_eq!(caret("x", 5), None);
        assert_eq!(caret("x", 0), None);
    }

    #[test]
    fn usage_and_connection_failures_exit_2() {
        assert_eq!(exit_status(&usage("no")), 2);
        assert_eq!(exit_status(&anyhow::anyhow!("query failed")), 1);
        let config = pgarrow::protocol::Config::parse("port=0").unwrap_err();
        assert_eq!(exit_status(&anyhow::Error::new(config).context("x")), 2);
        let timeout = anyhow::anyhow!("timed out")
            .context(Connecting)
            .context("more");
        assert_eq!(exit_status(&timeout), 2);
        assert_eq!(error_line(&timeout), "more: timed out");
    }

    #[test]
    fn broken_pipes_are_recognised_through_the_chain() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(pipe_closed(&anyhow::Error::new(io).context("writing")));
        assert!(!pipe_closed(&anyhow::anyhow!("other")));
    }
}
