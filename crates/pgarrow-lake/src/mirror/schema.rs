//! A table's columns changed at the source: what its lake table takes in place, what needs its
//! rows exported again, and what a mirror cannot follow.

use super::{Mirrored, RowKey};

/// A table's columns as a new Relation message gives them, against the lake table's: what
/// the lake table takes in place (columns added without a value for the rows before, columns
/// dropped, types widened), what needs the table's rows again (`reexport`, why), or what a
/// mirror cannot follow at all (the error's text).
pub(crate) struct SchemaChange {
    pub(crate) added: Vec<String>,
    pub(crate) dropped_names: Vec<String>,
    /// Why the lake table cannot take the change in place: the table is exported again.
    pub(crate) reexport: Option<String>,
    /// Columns renamed for sure, `(old, new)`: in their place among the others, not the last
    /// (a column added goes last).
    pub(crate) renamed: Vec<(String, String)>,
}

impl SchemaChange {
    /// The change from `ours` (the lake table's columns) to `theirs` (the source's), or why a
    /// mirror cannot follow it; `defaults` names the source's columns with a default (or a
    /// value the rows before them take).
    pub(crate) fn compare(
        m: &Mirrored,
        ours: &[String],
        theirs: &arrow_schema::Schema,
        defaults: &[String],
    ) -> std::result::Result<SchemaChange, String> {
        let columns = theirs;
        let theirs: Vec<String> = columns.fields().iter().map(|f| f.name().clone()).collect();
        let theirs = theirs.as_slice();
        let added: Vec<String> = theirs
            .iter()
            .filter(|c| !ours.contains(c))
            .cloned()
            .collect();
        let dropped: Vec<String> = ours
            .iter()
            .filter(|c| !theirs.contains(c))
            .cloned()
            .collect();
        if let RowKey::Columns(key) = &m.key
            && let Some(k) = key.iter().find(|k| dropped.contains(k))
        {
            return Err(format!("its key column {k:?} is gone"));
        }
        let mut reexport = Self::reexport(m, ours, columns, &added, &dropped, defaults);
        let renamed = Self::renamed(ours, columns, &added, &dropped);
        // Told apart by whole rows, the table's index holds digests of the old columns.
        let types: Vec<&arrow_schema::DataType> =
            columns.fields().iter().map(|f| f.data_type()).collect();
        let retyped = !m.types.is_empty() && m.types.iter().collect::<Vec<_>>() != types;
        if m.key == RowKey::WholeRow
            && reexport.is_none()
            && (!added.is_empty() || !dropped.is_empty() || retyped)
        {
            reexport = Some(
                "the columns of a table told apart by whole rows (REPLICA IDENTITY FULL, no \
                 key) changed"
                    .into(),
            );
        }
        Ok(SchemaChange {
            added,
            dropped_names: dropped,
            reexport,
            renamed,
        })
    }

    /// The columns renamed for sure: a column gone whose place (not the last) a new one
    /// takes, the others in their order. A new column goes after the others, so only a rename
    /// puts one there (or a column dropped and one added last, when the last).
    fn renamed(
        ours: &[String],
        columns: &arrow_schema::Schema,
        added: &[String],
        dropped: &[String],
    ) -> Vec<(String, String)> {
        let theirs: Vec<&String> = columns.fields().iter().map(|f| f.name()).collect();
        if ours.len() != theirs.len() {
            return Vec::new();
        }
        ours.iter()
            .zip(&theirs)
            .enumerate()
            .filter(|(i, (old, new))| {
                *i + 1 < ours.len() && dropped.contains(old) && added.contains(new)
            })
            .map(|(_, (old, new))| (old.clone(), (*new).clone()))
            .collect()
    }

    /// Why the lake table cannot take the change in place, if it cannot.
    fn reexport(
        m: &Mirrored,
        ours: &[String],
        columns: &arrow_schema::Schema,
        added: &[String],
        dropped: &[String],
        defaults: &[String],
    ) -> Option<String> {
        let theirs: Vec<String> = columns.fields().iter().map(|f| f.name().clone()).collect();
        // The columns kept, in a new order: the lake's columns keep theirs.
        let kept_old: Vec<&String> = ours.iter().filter(|c| theirs.contains(c)).collect();
        let kept_new: Vec<&String> = theirs.iter().filter(|c| ours.contains(c)).collect();
        if kept_old != kept_new {
            return Some("the columns are in a new order".into());
        }
        // A renamed column keeps its place among the columns; a Relation message names the
        // columns only, so a column dropped and another added in its place look the same.
        // Taken as a drop and an add, a rename would lose the column's values.
        for (i, old) in ours.iter().enumerate() {
            if dropped.contains(old)
                && let Some(new) = theirs.get(i)
                && added.contains(new)
                && ours.len() == theirs.len()
            {
                return Some(format!(
                    "column {old:?} was renamed {new:?} (or dropped and another added in its \
                     place)"
                ));
            }
        }
        if let Some(why) = m.lake.refuses(dropped, columns) {
            return Some(why);
        }
        // A column added with a default gives the rows before it that value (a table
        // rewritten, for a volatile one) with no change in the WAL.
        added.iter().find(|c| defaults.contains(c)).map(|c| {
            format!(
                "column {c:?} was added with a default, which the rows before it take with no \
                 change in the WAL"
            )
        })
    }
}
