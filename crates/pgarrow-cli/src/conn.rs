//! Where to connect, from the command line: psql's `-h/-p/-U/-d/-W`, `--url`, `DATABASE_URL`
//! and the `PG*` environment, in that order of strength (see `args::CONNECTION_HELP`).

use std::time::Duration;

use anyhow::Result;
use pgarrow::protocol::Config;

use crate::args::ConnArgs;
use crate::usage;

/// The connection settings `args` give, over `DATABASE_URL` and the environment.
pub(crate) fn config(args: &ConnArgs, statement_timeout: Option<Duration>) -> Result<Config> {
    // A -d holding `=` or a URL is a whole connection string, as psql reads it.
    let (dbname, dsn) = match args.dbname.as_deref() {
        Some(d) if is_connection_string(d) => (None, Some(d)),
        other => (other, None),
    };
    if let (Some(_), Some(_)) = (dsn, &args.url) {
        return Err(usage(
            "give the connection string once: -d as a URL or key=value string, or --url",
        ));
    }
    // DATABASE_URL only when nothing on the command line says where to connect: its user
    // and password must not go to a server that -h names.
    let flags = args.host.is_some()
        || args.port.is_some()
        || args.username.is_some()
        || args.dbname.is_some();
    let base = dsn.or(args.url.as_deref()).map(str::to_owned).or_else(|| {
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty() && !flags)
    });
    let mut overrides: Vec<(&str, String)> = Vec::new();
    for (key, value) in [
        ("host", &args.host),
        ("port", &args.port),
        ("user", &args.username),
    ] {
        if let Some(v) = value {
            overrides.push((key, v.clone()));
        }
    }
    if let Some(d) = dbname {
        overrides.push(("dbname", d.to_owned()));
    }
    if args.password_prompt {
        overrides.push(("password", prompt_password()?));
    }
    let pairs: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut config =
        Config::parse_with_overrides(base.as_deref(), &pairs).map_err(pgarrow::Error::from)?;
    if statement_timeout.is_some() {
        config.statement_timeout = statement_timeout;
    }
    config.on_notice = Some(pgarrow::protocol::NoticeHandler::new(show_notice));
    Ok(config)
}

/// Whether the server's notices are printed (not with `--quiet`).
static SHOW_NOTICES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// `--quiet`: the server's notices are not printed.
pub(crate) fn quiet_notices(quiet: bool) {
    if quiet {
        SHOW_NOTICES.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A NOTICE, WARNING or INFO of the server on stderr, as psql prints it (`WARNING:  ...`),
/// with its detail and hint.
fn show_notice(n: &pgarrow::protocol::DbError) {
    if !SHOW_NOTICES.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut line = format!("{}:  {}", n.severity, n.message);
    if let Some(detail) = &n.detail {
        line.push_str(&format!("\nDETAIL:  {detail}"));
    }
    if let Some(hint) = &n.hint {
        line.push_str(&format!("\nHINT:  {hint}"));
    }
    eprintln!("{line}");
}

/// `--url` (or a `--from`/`--to` of `copy`), else `DATABASE_URL`, else the `PG*` environment.
pub(crate) fn config_from(url: Option<&str>) -> Result<Config> {
    config(
        &ConnArgs {
            url: url.map(str::to_owned),
            ..ConnArgs::default()
        },
        None,
    )
}

fn is_connection_string(s: &str) -> bool {
    s.contains('=') || s.starts_with("postgresql://") || s.starts_with("postgres://")
}

/// `-W`: the password, typed on the terminal without echo.
fn prompt_password() -> Result<String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() && std::fs::File::open("/dev/tty").is_err() {
        return Err(usage(
            "-W prompts for the password on a terminal, and there is none: set PGPASSWORD, \
             put it in ~/.pgpass, or give it in the connection string",
        ));
    }
    rpassword::prompt_password("Password: ").map_err(|e| {
        usage(&format!(
            "-W prompts for the password on a terminal, and reading it failed ({e}): set \
             PGPASSWORD or use ~/.pgpass"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_are_told_from_names() {
        assert!(is_connection_string("postgresql://u@h/db"));
        assert!(is_connection_string("host=h dbname=db"));
        assert!(!is_connection_string("shop"));
    }
}
