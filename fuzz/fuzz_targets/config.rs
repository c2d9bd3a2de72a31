//! Arbitrary strings (non-UTF-8 input is skipped) through the connection-string parser, the
//! redactor and `parse_duration`: never a panic, the same answer twice, and a parsed password
//! never survives redaction.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pgarrow_protocol::{Config, Result, parse_duration, redact};

fn no_env(_: &str) -> Option<String> {
    None
}

/// Both parses gave the same answer: equal configs (their `Debug` too), or the same error.
fn same(a: &Result<Config>, b: &Result<Config>) {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert!(a == b, "{a:?} != {b:?}");
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("parse is not deterministic: {a:?} then {b:?}"),
    }
}

/// `s` with every `%XY` decoded as the URL parser decodes it (anything else kept as it is).
fn percent_decoded(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%')
            .then(|| b.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(x) => {
                out.push(x);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// `s` with every `\` escape of the key=value syntax resolved (`\x` is `x`; a final `\` goes).
fn unescaped(s: &str) -> Vec<u8> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out.into_bytes()
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The redactor must not give back the password the parser found.
///
/// Asserted only where it must hold. The redacted string is the input with the password values
/// replaced by `***` (URLs), or the parsed pairs re-quoted with `password=***` (key=value). So
/// in its decoded form (percent-decoded for URLs; as written, for key=value, as no character
/// of the password checked is an escape), an occurrence of a password free of `*`, `'`, `=`,
/// `\` and white space lies inside one piece kept from the input: a user, host, key or other
/// value. If the password occurs exactly once in the decoded input, it is its own occurrence,
/// so a redacted string containing it has kept the password. (No `service` either: a service
/// file's password need not be in the string at all.)
fn check_redaction(s: &str, config: &Config) {
    let Some(password) = config.password.as_deref() else {
        return;
    };
    if password.chars().count() < 4
        || password
            .chars()
            .any(|c| c.is_whitespace() || "*'=\\".contains(c))
    {
        return;
    }
    let t = s.trim();
    let url = t.starts_with("postgresql://") || t.starts_with("postgres://");
    let decoded = if url {
        percent_decoded(t)
    } else {
        unescaped(t)
    };
    if count(&decoded, password.as_bytes()) != 1 || count(&decoded, b"service") != 0 {
        return;
    }
    let r = redact(s);
    let shown = if url {
        percent_decoded(&r)
    } else {
        r.clone().into_bytes()
    };
    assert!(
        count(&shown, password.as_bytes()) == 0,
        "redact({s:?}) = {r:?} shows the password {password:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    // The redactor takes anything.
    let r = redact(s);
    assert_eq!(r, redact(s));

    // The process environment: no panic, the same answer twice.
    same(&Config::parse(s), &Config::parse(s));

    // No environment: the same, and the password checks.
    let a = Config::parse_with_env(s, &no_env);
    same(&a, &Config::parse_with_env(s, &no_env));
    if let Ok(config) = &a {
        let debug = format!("{config:?}");
        match &config.password {
            Some(_) => assert!(debug.contains("password: Some(\"<redacted>\")"), "{debug}"),
            None => assert!(debug.contains("password: None"), "{debug}"),
        }
        check_redaction(s, config);
    }

    // Durations: no panic, surrounding white space ignored, a bare number counts units.
    let units = [
        Duration::from_micros(1),
        Duration::from_millis(1),
        Duration::from_secs(1),
        Duration::from_secs(60),
    ];
    let unit = units[s.len() % units.len()];
    let d = parse_duration(s, unit);
    assert_eq!(d, parse_duration(s, unit));
    assert_eq!(d, parse_duration(s.trim(), unit));
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let expected = t
            .parse::<u64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .and_then(|n| unit.checked_mul(n));
        assert_eq!(d.clone().ok(), expected, "{t:?}");
    }
    if let Ok(d) = d {
        assert!(d <= unit.max(Duration::from_secs(86400)) * u32::MAX);
    }
});
