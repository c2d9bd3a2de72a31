//! Arbitrary password files and connection tokens through the `.pgpass` look-up: never a panic;
//! the answer is the unescaped rest of a line after a `:`, and exactly what libpq's algorithm
//! (`passwordFromFile`, `pwdfMatchesString`), restated here byte by byte, finds; and a line
//! written for the tokens is found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgarrow_protocol::fuzzing::pgpass_find as find;

/// libpq's `pwdfMatchesString`: if the first field of `line` matches `token`, the rest of the
/// line after its `:`.
fn field<'a>(line: &'a [u8], token: &[u8]) -> Option<&'a [u8]> {
    if line.starts_with(b"*:") {
        return Some(&line[2..]);
    }
    let (mut i, mut t) = (0, 0);
    loop {
        let mut c = *line.get(i)?;
        let mut escaped = false;
        if c == b'\\' {
            i += 1;
            c = *line.get(i)?;
            escaped = true;
        }
        if c == b':' && !escaped {
            return (t == token.len()).then(|| &line[i + 1..]);
        }
        if token.get(t) != Some(&c) {
            return None;
        }
        i += 1;
        t += 1;
    }
}

/// libpq's de-escaping of the password: up to an unescaped `:` or the end; a `\` before any
/// character is dropped, a final one kept.
fn unescape(rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < rest.len() && rest[i] != b':' {
        if rest[i] == b'\\' && i + 1 < rest.len() {
            i += 1;
        }
        out.push(rest[i]);
        i += 1;
    }
    out
}

/// The model: libpq's `passwordFromFile` over `text`.
fn model(text: &str, tokens: [&str; 4]) -> Option<String> {
    if tokens[2].is_empty() || tokens[3].is_empty() {
        return None;
    }
    'lines: for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line.as_bytes();
        for token in tokens {
            match field(rest, token.as_bytes()) {
                Some(r) => rest = r,
                None => continue 'lines,
            }
        }
        return Some(String::from_utf8(unescape(rest)).expect("only ASCII `\\` is removed"));
    }
    None
}

/// A field as a `.pgpass` line must write it: `:` and `\` escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == ':' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fuzz_target!(|input: (&str, &str, &str, &str, &str, &str)| {
    let (host, port, dbname, user, password, text) = input;
    let tokens = [host, port, dbname, user];

    let found = find(text, host, port, dbname, user);
    assert_eq!(found, find(text, host, port, dbname, user));
    if let Some(p) = &found {
        // The unescaped rest of some line, after one of its `:`.
        assert!(
            text.split('\n').any(|line| {
                let line = line.strip_suffix('\r').unwrap_or(line).as_bytes();
                (0..line.len())
                    .filter(|&i| line[i] == b':')
                    .any(|i| unescape(&line[i + 1..]) == p.as_bytes())
            }),
            "{p:?} is no line's rest"
        );
    }
    assert_eq!(found, model(text, tokens), "{text:?} for {tokens:?}");

    // A line written for these tokens, first in the file, is the one found. A password must
    // not span lines, nor end in the `\r` a line ending may have; a token with a `\n` matches
    // no line at all; empty database and user names match nothing.
    if dbname.is_empty()
        || user.is_empty()
        || tokens.iter().any(|t| t.contains('\n'))
        || password.contains('\n')
        || password.ends_with('\r')
    {
        return;
    }
    let mut line = tokens.map(escape).join(":");
    if line.starts_with('#') {
        // Not a comment: the host starts with an escaped `#`.
        line.insert(0, '\\');
    }
    line.push(':');
    line.push_str(&escape(password));
    let first = format!("{line}\n{text}");
    assert_eq!(
        find(&first, host, port, dbname, user).as_deref(),
        Some(password),
        "{line:?}"
    );
    // Last in the file, it is found unless an earlier line matches first.
    let last = format!("{text}\n{line}");
    let found = find(&last, host, port, dbname, user);
    assert!(found.is_some(), "{line:?} after {text:?}");
    assert_eq!(found, model(&last, tokens));
});
