//! Inputs in object stores (the `cloud` feature): what an object URL names, the object
//! itself, the objects a pattern matches, or a prefix with a manifest.

use super::InputFile;
use crate::manifest::MANIFEST_NAME;
use crate::store::ObjectLocation;
use crate::{Error, Location, Result};

/// What an object URL names: objects (one, or those a pattern matches), or a prefix with a
/// manifest.
pub(crate) enum ObjectInput {
    Files(Vec<InputFile>),
    Dir,
}

/// Whether a `*` or `?` makes `key` a pattern.
fn is_pattern(key: &str) -> bool {
    key.contains(['*', '?'])
}

/// `text` matches `pattern`: `*` is any run of characters but `/`, `?` any one but `/`.
fn matches(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.split_first(), text.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            matches(rest, text)
                || text
                    .split_first()
                    .is_some_and(|(c, t)| *c != b'/' && matches(pattern, t))
        }
        (Some((b'?', rest)), Some((c, t))) => *c != b'/' && matches(rest, t),
        (Some((p, rest)), Some((c, t))) => p == c && matches(rest, t),
        _ => false,
    }
}

/// Finds what an object URL names: the objects a pattern matches (listed under the prefix
/// before its first pattern segment), the object itself, or a prefix with a manifest.
pub(crate) fn object_input(o: &ObjectLocation) -> Result<ObjectInput> {
    let key = o.key();
    if is_pattern(key) {
        let fixed: Vec<&str> = key
            .split('/')
            .take_while(|segment| !is_pattern(segment))
            .collect();
        let prefix = o.at(object_store::path::Path::from_iter(fixed.iter().copied()));
        let mut found: Vec<InputFile> = prefix
            .list()?
            .into_iter()
            .filter(|(path, _)| matches(key.as_bytes(), path.as_ref().as_bytes()))
            .map(|(path, size)| (Location::Object(o.at(path)), None, Some(size)))
            .collect();
        if found.is_empty() {
            return Err(Error::usage(format!("no object matches {o}")));
        }
        found.sort_by_key(|(l, _, _)| l.to_string());
        return Ok(ObjectInput::Files(found));
    }
    if !key.is_empty()
        && let Some(size) = o.size()?
    {
        return Ok(ObjectInput::Files(vec![(
            Location::Object(o.clone()),
            None,
            Some(size),
        )]));
    }
    if o.child(MANIFEST_NAME).size()?.is_some() {
        return Ok(ObjectInput::Dir);
    }
    Err(Error::usage(format!(
        "{o}: no such object, and no {MANIFEST_NAME} under it"
    )))
}
