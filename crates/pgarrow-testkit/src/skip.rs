//! What a test does when something it needs is missing: one rule for every test of the
//! workspace, so that no test reads environment variables of its own to decide.
//!
//! * A **required** part (a PostgreSQL server, `openssl` for the TLS cluster, pyarrow, the
//!   reader matrix's readers, the Python package and pytest) fails the test when it is
//!   missing ([`missing`]): a run without it cannot pass. A run that knows it lacks one
//!   asks to skip with `PGARROW_ALLOW_SKIP=1` ([`ALLOW_SKIP_ENV`]); the test then prints a
//!   `SKIPPED: ...` line on stderr and returns.
//! * An **opt-in** part (PostGIS, pgvector: distributions do not package them for every
//!   server version) is skipped loudly when missing, unless its own variable is `1`
//!   ([`missing_opt_in`]; CI sets `PGARROW_REQUIRE_POSTGIS` and `PGARROW_REQUIRE_PGVECTOR`
//!   where it could install them), which makes a missing one a failure.

/// The environment variable that, set to `1`, lets a test whose required part is missing
/// skip (loudly) instead of failing.
pub const ALLOW_SKIP_ENV: &str = "PGARROW_ALLOW_SKIP";

/// What every failure for a missing part ends with: the one command that installs every part.
pub const SETUP_HINT: &str = "`bash scripts/test-all.sh` installs every part the tests need and \
                              runs them all (`--setup-only` just installs them)";

/// Whether a run allows skipping, from the value of [`ALLOW_SKIP_ENV`] (`None` when it is
/// unset): only `1` does.
pub fn skip_allowed(env: Option<&str>) -> bool {
    env == Some("1")
}

/// Says that `what`, which the calling test needs, is missing; `how_to_get_it` says how to
/// install or find it (or why it could not be had). Fails the test unless the run allows
/// skipping (`PGARROW_ALLOW_SKIP=1`); then it prints `SKIPPED: ...` on stderr and returns,
/// and the test should return too:
///
/// ```no_run
/// if std::process::Command::new("openssl").arg("version").status().is_err() {
///     pgarrow_testkit::missing("the openssl command", "apt-get install openssl");
///     return;
/// }
/// ```
///
/// # Panics
/// Unless `PGARROW_ALLOW_SKIP=1`.
#[track_caller]
pub fn missing(what: &str, how_to_get_it: &str) {
    let allow = std::env::var(ALLOW_SKIP_ENV).ok();
    act(verdict(
        Need::Required,
        allow.as_deref(),
        what,
        how_to_get_it,
    ));
}

/// Says that `what`, an opt-in part of the calling test, is missing: prints `SKIPPED: ...`
/// on stderr and returns (the test should return too), unless the environment variable
/// `require_env` is `1`, which makes it a failure.
///
/// # Panics
/// When `require_env` is `1`.
#[track_caller]
pub fn missing_opt_in(require_env: &str, what: &str, how_to_get_it: &str) {
    let require = std::env::var(require_env).ok();
    act(verdict(
        Need::OptIn(require_env),
        require.as_deref(),
        what,
        how_to_get_it,
    ));
}

/// How much a test needs a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need<'a> {
    /// A run without it fails, unless it allows skipping.
    Required,
    /// A run without it skips, unless this variable is `1`.
    OptIn(&'a str),
}

/// What a test does about a missing part.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Fails, with this message.
    Fail(String),
    /// Skips, printing this line.
    Skip(String),
}

/// The rule: `env` is the value of the variable that decides ([`ALLOW_SKIP_ENV`] for a
/// required part, the part's own for an opt-in one).
fn verdict(need: Need<'_>, env: Option<&str>, what: &str, how_to_get_it: &str) -> Verdict {
    let missing = format!("{what} is missing: {how_to_get_it}");
    match need {
        Need::Required if skip_allowed(env) => Verdict::Skip(format!("SKIPPED: {missing}")),
        Need::Required => Verdict::Fail(format!(
            "{missing}. {SETUP_HINT} (or set {ALLOW_SKIP_ENV}=1 to skip the tests that need it)"
        )),
        Need::OptIn(var) if env == Some("1") => Verdict::Fail(format!("{var}=1 but {missing}")),
        Need::OptIn(var) => {
            Verdict::Skip(format!("SKIPPED: {missing} ({var}=1 makes this a failure)"))
        }
    }
}

#[track_caller]
fn act(verdict: Verdict) {
    match verdict {
        Verdict::Fail(message) => panic!("{message}"),
        Verdict::Skip(line) => eprintln!("{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_1_allows_skipping() {
        assert!(skip_allowed(Some("1")));
        for env in [
            None,
            Some(""),
            Some("0"),
            Some("true"),
            Some("yes"),
            Some(" 1"),
        ] {
            assert!(!skip_allowed(env), "{env:?}");
        }
    }

    #[test]
    fn required_parts_fail_unless_the_run_allows_skipping() {
        let v = |env| verdict(Need::Required, env, "pyarrow", "pip install pyarrow");
        assert_eq!(
            v(None),
            Verdict::Fail(
                "pyarrow is missing: pip install pyarrow. `bash scripts/test-all.sh` installs \
                 every part the tests need and runs them all (`--setup-only` just installs \
                 them) (or set PGARROW_ALLOW_SKIP=1 to skip the tests that need it)"
                    .into()
            )
        );
        assert!(matches!(v(Some("0")), Verdict::Fail(_)));
        assert_eq!(
            v(Some("1")),
            Verdict::Skip("SKIPPED: pyarrow is missing: pip install pyarrow".into())
        );
    }

    #[test]
    fn opt_in_parts_skip_unless_required() {
        let need = Need::OptIn("PGARROW_REQUIRE_POSTGIS");
        let v = |env| verdict(need, env, "PostGIS", "no extension");
        assert_eq!(
            v(None),
            Verdict::Skip(
                "SKIPPED: PostGIS is missing: no extension (PGARROW_REQUIRE_POSTGIS=1 makes this \
                 a failure)"
                    .into()
            )
        );
        assert!(matches!(v(Some("0")), Verdict::Skip(_)));
        assert_eq!(
            v(Some("1")),
            Verdict::Fail("PGARROW_REQUIRE_POSTGIS=1 but PostGIS is missing: no extension".into())
        );
    }

    #[test]
    #[should_panic(expected = "the openssl command is missing")]
    fn a_failing_verdict_fails_the_test() {
        act(verdict(
            Need::Required,
            None,
            "the openssl command",
            "apt-get install openssl",
        ));
    }

    #[test]
    fn a_skipping_verdict_returns() {
        act(verdict(Need::OptIn("X"), None, "it", "nowhere"));
    }
}
