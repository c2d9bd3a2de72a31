//! The password file (`~/.pgpass`, `PGPASSFILE`, `passfile=`), read as libpq reads it.
//!
//! Each line is `hostname:port:database:username:password`. A field that is exactly `*`
//! matches anything; `\` escapes `:` and `\`. Lines starting with `#` are comments; the first
//! matching line wins. The host of a connection through the default socket directory is
//! `localhost`. On Unix a file that is not a plain file, or that the group or others may
//! access, is ignored (libpq prints a warning; pgarrow says so if authentication then lacks a
//! password). Reference: libpq `fe-connect.c`, `passwordFromFile` and `pwdfMatchesString`.

use std::path::Path;

/// The result of a look-up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A matching line's password.
    Found(String),
    /// No file, or no line matched.
    NotFound,
    /// The file was ignored; the reason, for the error message.
    Ignored(String),
}

/// Finds the password for `host:port:dbname:user` in the file at `path`.
pub(crate) fn lookup(path: &Path, host: &str, port: u16, dbname: &str, user: &str) -> Lookup {
    let Ok(meta) = std::fs::metadata(path) else {
        return Lookup::NotFound;
    };
    if !meta.is_file() {
        return Lookup::Ignored(format!(
            "password file \"{}\" is not a plain file",
            path.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Lookup::Ignored(format!(
                "password file \"{}\" has group or world access; permissions should be u=rw \
                 (0600) or less",
                path.display()
            ));
        }
    }
    let Ok(text) = std::fs::read(path) else {
        return Lookup::NotFound;
    };
    let text = String::from_utf8_lossy(&text);
    match find(&text, host, &port.to_string(), dbname, user) {
        Some(p) => Lookup::Found(p),
        None => Lookup::NotFound,
    }
}

/// The password of the first line of `text` matching the four tokens.
///
/// `pub` only so that `crate::fuzzing` can re-export it for the fuzz targets; the module is
/// private, so this is not part of the API.
pub fn find(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    if dbname.is_empty() || user.is_empty() {
        return None;
    }
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rest = Some(line)
            .and_then(|l| match_field(l, host))
            .and_then(|l| match_field(l, port))
            .and_then(|l| match_field(l, dbname))
            .and_then(|l| match_field(l, user));
        if let Some(rest) = rest {
            return Some(unescape_password(rest));
        }
    }
    None
}

/// If the first field of `line` matches `token`, the rest of the line after its `:`.
fn match_field<'a>(line: &'a str, token: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut field = String::new();
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, n)) => field.push(n),
                None => return None,
            },
            ':' => return (field == token).then(|| &line[i + 1..]),
            c => field.push(c),
        }
    }
    None
}

/// The password field: up to an unescaped `:` or the end, `\` escapes removed.
fn unescape_password(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n\
        db.example.com:5432:sales:alice:s3cret\n\
        *:5433:*:bob:b\\:ob\\\\pw\n\
        loc\\:al:*:*:*:colon-host\r\n\
        \\*:*:*:carol:literal-star\n\
        *:*:*:*:fallback:ignored-after-colon\n";

    #[test]
    fn libpq_matching_rules() {
        let f = |h, p, d, u| find(FILE, h, p, d, u);
        assert_eq!(
            f("db.example.com", "5432", "sales", "alice").as_deref(),
            Some("s3cret")
        );
        // Exact fields: another port, database or user falls through to the wildcard line.
        assert_eq!(
            f("db.example.com", "5433", "sales", "alice").as_deref(),
            Some("fallback")
        );
        assert_eq!(f("h", "5433", "any", "bob").as_deref(), Some("b:ob\\pw"));
        assert_eq!(f("loc:al", "1", "d", "u").as_deref(), Some("colon-host"));
        // `\*` is a literal star, not a wildcard.
        assert_eq!(f("*", "1", "d", "carol").as_deref(), Some("literal-star"));
        assert_eq!(f("other", "1", "d", "carol").as_deref(), Some("fallback"));
        // The first matching line wins; comments never match.
        assert_eq!(find("# a:b:c:d:e\n", "# a", "b", "c", "d"), None);
        assert_eq!(
            find("*:*:*:*:one\n*:*:*:*:two", "h", "1", "d", "u").as_deref(),
            Some("one")
        );
        // Short or empty lines never match; an empty database or user never matches.
        assert_eq!(find("h:1:d\n\n", "h", "1", "d", "u"), None);
        assert_eq!(find("*:*:*:*:x", "h", "1", "", "u"), None);
    }

    #[cfg(unix)]
    #[test]
    fn insecure_files_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            lookup(&path, "h", 1, "d", "u"),
            Lookup::Ignored(m) if m.contains("group or world access")
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, "h", 1, "d", "u"), Lookup::Found("pw".into()));
        assert_eq!(
            lookup(&dir.path().join("missing"), "h", 1, "d", "u"),
            Lookup::NotFound
        );
        assert!(matches!(
            lookup(dir.path(), "h", 1, "d", "u"),
            Lookup::Ignored(m) if m.contains("not a plain file")
        ));
    }
}
