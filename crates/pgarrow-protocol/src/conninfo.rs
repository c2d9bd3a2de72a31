//! The two syntaxes of a connection string: URLs (`postgresql://user@host:port/db?k=v`, with
//! percent-decoding) and libpq's `key=value` lists (with quoting), both parsed into key-value
//! pairs; and [`redact`], which hides the password in either for messages.

use crate::error::{Error, Result};

/// Removes the password from a connection string, for showing it to people.
///
/// URLs lose the `:password` of their user info and any `password=` query parameter;
/// key=value strings lose their `password=` pair's value.
pub fn redact(s: &str) -> String {
    let t = s.trim();
    if let Some(rest) = t
        .strip_prefix("postgresql://")
        .map(|r| ("postgresql://", r))
        .or_else(|| t.strip_prefix("postgres://").map(|r| ("postgres://", r)))
    {
        let (scheme, rest) = rest;
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = match authority.rfind('@') {
            Some(at) => {
                let (userinfo, hosts) = authority.split_at(at);
                match userinfo.split_once(':') {
                    Some((u, _)) => format!("{u}:***{hosts}"),
                    None => authority.to_owned(),
                }
            }
            None => authority.to_owned(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let q: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        // Keys are percent-decoded when parsed (`pass%77ord` is `password`).
                        Some((key, _))
                            if is_secret(&percent_decode(key, "").unwrap_or_default()) =>
                        {
                            format!("{key}=***")
                        }
                        _ => kv.to_owned(),
                    })
                    .collect();
                format!("{path}?{}", q.join("&"))
            }
            None => tail.to_owned(),
        };
        return format!("{scheme}{authority}{tail}");
    }
    match parse_key_values(t) {
        Ok(pairs) => pairs
            .into_iter()
            .map(|(k, v)| {
                if is_secret(&k) {
                    format!("{k}=***")
                } else {
                    format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => "<unparseable connection string>".to_owned(),
    }
}

/// Whether a connection setting holds a secret.
fn is_secret(key: &str) -> bool {
    matches!(key, "password" | "sslpassword")
}

pub(crate) fn percent_decode(s: &str, what: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                // Two hex digits: `from_str_radix` alone would take `+1`.
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::config(format!("invalid percent-encoding in the URL's {what}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::config(format!("the URL's {what} is not valid UTF-8 once decoded")))
}

/// `postgresql://[user[:password]@][host][:port][/dbname][?param=value&...]`
pub(crate) fn parse_url(s: &str) -> Result<Vec<(String, String)>> {
    let rest = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
        .unwrap_or(s);
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let mut params = Vec::new();
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                params.push(("user".to_owned(), percent_decode(user, "user")?));
            }
            if let Some(p) = password {
                params.push(("password".to_owned(), percent_decode(p, "password")?));
            }
            hostport
        }
        None => authority,
    };
    if !hostport.is_empty() {
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| Error::config("unterminated [ in the URL's host"))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (percent_decode(h, "host")?, Some(p)),
                None => (percent_decode(hostport, "host")?, None),
            }
        };
        if !host.is_empty() {
            params.push(("host".to_owned(), host));
        }
        if let Some(port) = port.filter(|p| !p.is_empty()) {
            params.push(("port".to_owned(), port.to_owned()));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        params.push(("dbname".to_owned(), percent_decode(db, "database name")?));
    }
    if let Some(query) = query {
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::config(format!("URL parameter \"{kv}\" has no value")))?;
            params.push((
                percent_decode(k, "parameters")?,
                percent_decode(v, "parameters")?,
            ));
        }
    }
    Ok(params)
}

/// libpq's `key = value ...`, values optionally single-quoted with `\'` and `\\` escapes.
pub(crate) fn parse_key_values(s: &str) -> Result<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            // After an unquoted password with a space, `key` is a piece of the password.
            let after_password = params
                .last()
                .is_some_and(|(k, _): &(String, String)| k == "password");
            return Err(Error::config(if after_password {
                "missing \"=\" after the password in the connection string (quote values \
                 with spaces: password='...')"
                    .to_owned()
            } else {
                format!("missing \"=\" after \"{key}\" in the connection string")
            }));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(Error::config("unterminated quoted value")),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(Error::config("unterminated quoted value")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        params.push((key, value));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(
            redact("postgresql://u:secret@h:5/db?password=x&sslmode=require"),
            "postgresql://u:***@h:5/db?password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        let r = redact("host=h password='se cret' user=u");
        assert!(!r.contains("se cret") && r.contains("password=***"), "{r}");
        // The parser decodes query keys: so does the redaction (found by the `config` fuzz
        // target's property).
        assert_eq!(
            redact("postgres://?pass%77ord=cdef&p%61ssword=x"),
            "postgres://?pass%77ord=***&p%61ssword=***"
        );
    }

    #[test]
    fn percent_escapes_are_two_hex_digits() {
        assert_eq!(percent_decode("a%41%7e", "x").unwrap(), "aA~");
        for bad in ["%+1", "%-1", "%4", "%g0", "% 1"] {
            assert!(percent_decode(bad, "x").is_err(), "{bad}");
        }
    }
}
