//! How a failure ends the process: the message (with the spot in the user's query, as psql
//! shows it), and the exit status (see `args::CONNECTION_HELP`), both from what the library
//! says the error is ([`pgarrow::Category`]), never from its text.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use pgarrow::{Category, Stop};

/// The status after a usage error or a connection that could not be made.
pub(crate) const EXIT_USAGE: i32 = 2;
/// An input (a file, a lake table another writer made) holds what it must not, or what pgarrow
/// does not read: a data error, not the command line's.
pub(crate) const EXIT_DATA: i32 = 3;

/// What the run knows that its error report needs: the query as the user wrote it (for the
/// caret), a hint for a `--table` with capitals, whether the data goes to standard output,
/// what an interruption leaves, and the stop that Ctrl-C and SIGTERM set.
#[derive(Debug)]
pub(crate) struct Session {
    /// Stopped by Ctrl-C or SIGTERM (see [`Session::on_signals`]).
    pub(crate) stop: Stop,
    /// The signal that stopped the run, or 0.
    signal: Arc<AtomicI32>,
    /// The query text as the user gave it, for placing the server's error position.
    pub(crate) query: Option<String>,
    /// How to name the `--table` the user gave, when it held capitals that SQL folded away.
    pub(crate) table_hint: Option<String>,
    /// Whether the data goes to standard output (where a closed pipe ends it quietly).
    pub(crate) to_stdout: bool,
    /// What an interrupted run leaves.
    pub(crate) interrupted: &'static str,
}

impl Session {
    /// A session whose stop Ctrl-C and SIGTERM set, from a thread of their own (whatever the
    /// main thread waits on).
    pub(crate) fn on_signals() -> std::io::Result<Session> {
        let session = Session {
            stop: Stop::new(),
            signal: Arc::new(AtomicI32::new(0)),
            query: None,
            table_hint: None,
            to_stdout: false,
            interrupted: NOTHING_WRITTEN,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, signal) = (session.stop.clone(), Arc::clone(&session.signal));
        // Installed here, before the thread runs: a signal from now on is caught.
        let mut term = rt.block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        })?;
        let mut int = rt.block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        })?;
        std::thread::Builder::new()
            .name("pgarrow-signals".into())
            .spawn(move || {
                let which = rt.block_on(async {
                    tokio::select! {
                        _ = int.recv() => libc::SIGINT,
                        _ = term.recv() => libc::SIGTERM,
                    }
                });
                signal.store(which, Ordering::SeqCst);
                stop.stop();
            })?;
        Ok(session)
    }

    /// Remembers a `--table` argument: one with unquoted capitals gets a hint if the table
    /// is not found.
    pub(crate) fn remember_table(&mut self, text: &str) {
        let mut quoted = false;
        let capitals = text.chars().any(|c| {
            if c == '"' {
                quoted = !quoted;
            }
            !quoted && c.is_ascii_uppercase()
        });
        if capitals && !text.contains('"') {
            let quoted: Vec<String> = text.split('.').map(|p| format!("\"{p}\"")).collect();
            self.table_hint = Some(format!(
                "hint: unquoted names fold to lower case, as in SQL; for a table named with \
                 capitals, quote it: --table '{}'\n",
                quoted.join(".")
            ));
        }
    }

    /// Prints what `e` says (nothing for a closed pipe) and returns the exit status.
    pub(crate) fn report(&self, e: &anyhow::Error) -> i32 {
        let library = e.chain().find_map(|c| c.downcast_ref::<pgarrow::Error>());
        if library.is_some_and(pgarrow::Error::is_cancelled) || self.stop.is_stopped() {
            let signal = match self.signal.load(Ordering::SeqCst) {
                0 => libc::SIGINT,
                s => s,
            };
            let name = if signal == libc::SIGTERM {
                "SIGTERM"
            } else {
                "Ctrl-C"
            };
            eprintln!("pgarrow: interrupted ({name}); {}", self.interrupted);
            return 128 + signal;
        }
        if self.to_stdout && library.is_some_and(pgarrow::Error::is_broken_pipe) {
            // The reader of standard output closed it (`| head`): it has what it wanted.
            return 0;
        }
        eprintln!("pgarrow: error: {}", error_line(e));
        if let Some(position) = library.and_then(pgarrow::Error::query_position)
            && let Some(context) = self.query.as_deref().and_then(|q| caret(q, position))
        {
            eprint!("{context}");
        }
        if let (Some(hint), Some(e)) = (&self.table_hint, library)
            && e.code() == Some("42P01")
        {
            eprint!("{hint}");
        }
        exit_status(e)
    }
}

/// What an interrupted export leaves.
pub(crate) const NOTHING_WRITTEN: &str = "no output was written";
/// What an interrupted load leaves.
pub(crate) const NOTHING_LOADED: &str = "nothing was loaded (the transaction was rolled back)";

/// What an interrupted apply leaves.
pub(crate) const ROLL_UNDONE: &str =
    "the rolls applied before stay, the one under way was rolled back (a rerun goes on from there)";

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

/// 2 for usage and connection failures, 3 for invalid input data, 1 for the rest.
fn exit_status(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if cause.is::<Usage>() || cause.is::<clap::Error>() {
            return EXIT_USAGE;
        }
        if let Some(p) = cause.downcast_ref::<pgarrow::Error>() {
            return match p.category() {
                Category::Usage | Category::Connection => EXIT_USAGE,
                _ if p.is_invalid_input() => EXIT_DATA,
                _ => 1,
            };
        }
        // Files, objects and manifests the command opened itself (pgarrow-io's error).
        if let Some(io) = cause.downcast_ref::<pgarrow::io::Error>() {
            return if io.is_usage() { EXIT_USAGE } else { 1 };
        }
        if cause.is::<pgarrow::names::InvalidName>() {
            return EXIT_USAGE;
        }
    }
    1
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
        let config = anyhow::Error::new(pgarrow::Error::from(config)).context("x");
        assert_eq!(exit_status(&config), 2);
        let name = pgarrow::names::TableName::parse("a.b.c").unwrap_err();
        assert_eq!(exit_status(&anyhow::Error::new(name)), 2);
        let files = pgarrow::io::Input::open::<&str>(&[], &pgarrow::io::InputOptions::default());
        assert_eq!(exit_status(&anyhow::Error::new(files.unwrap_err())), 2);
        let disk = pgarrow::io::Error::Stdout(std::io::Error::other("full"));
        assert_eq!(exit_status(&anyhow::Error::new(disk)), 1);
    }

    #[test]
    fn invalid_input_data_exits_3_under_any_context() {
        let data =
            pgarrow::Error::invalid_input("a malformed deletion vector").context("reading t");
        assert_eq!(exit_status(&anyhow::Error::new(data).context("import")), 3);
        let value = pgarrow::Error::out_of_step("not in step");
        assert_eq!(exit_status(&anyhow::Error::new(value)), 1);
    }
}
