//! Where the library's warnings and debug lines go: the crates never print; they log through
//! the [`log`] facade (a checkpoint that could not be written after its commit landed, an
//! upload the store would not abort, a mirror's timings), and the program that embeds them
//! chooses the logger. The command line and the Python package install [`to_stderr`]; a Rust
//! program installs its own (`env_logger`, `tracing-log`, ...) or none.

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The variable that shows the debug lines as well: where a mirror's time goes, its commits'
/// steps (`PGARROW_DEBUG=1`; the older `PGARROW_MIRROR_DEBUG` too).
pub const DEBUG_VARIABLE: &str = "PGARROW_DEBUG";

/// Prints pgarrow's warnings on standard error (`pgarrow: warning: ...`), and its debug lines
/// too when [`DEBUG_VARIABLE`] is set: what a command-line program wants. Does nothing when the
/// process already has a logger.
pub fn to_stderr() {
    let debug = std::env::var_os(DEBUG_VARIABLE).is_some()
        || std::env::var_os("PGARROW_MIRROR_DEBUG").is_some();
    let level = if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Warn
    };
    if log::set_logger(&STDERR).is_ok() {
        log::set_max_level(level);
    }
}

static STDERR: Stderr = Stderr;

#[derive(Debug)]
struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Only pgarrow's own lines: the HTTP stack's (reqwest, hyper) are not ours to show.
        metadata.level() <= log::max_level() && metadata.target().starts_with("pgarrow")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        use std::io::Write as _;
        let line = match record.level() {
            Level::Error | Level::Warn => format!("pgarrow: warning: {}\n", record.args()),
            _ => format!("{}: {}\n", record.target(), record.args()),
        };
        // One write of the whole line, so that lines of several threads do not interleave; a
        // closed standard error loses the line, as it would any other.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pgarrows_lines_are_shown() {
        log::set_max_level(LevelFilter::Debug);
        let ours = Metadata::builder()
            .target("pgarrow_lake::live")
            .level(Level::Warn)
            .build();
        let theirs = Metadata::builder()
            .target("reqwest::connect")
            .level(Level::Warn)
            .build();
        assert!(STDERR.enabled(&ours));
        assert!(!STDERR.enabled(&theirs));
        log::set_max_level(LevelFilter::Warn);
        let debug = Metadata::builder()
            .target("pgarrow_lake::live")
            .level(Level::Debug)
            .build();
        assert!(!STDERR.enabled(&debug));
    }
}
