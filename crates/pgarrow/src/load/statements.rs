//! The statements of a load, made from names alone (no I/O), so that what each mode sends can
//! be read, and tested, before a server is involved.

use crate::names::TableName;
use crate::protocol::quote_ident;
use crate::{Error, LoadMode, Result};
use pgarrow_types::plain_ident;

/// The temporary table a staged load copies into (upserts, text columns). It is named with
/// its schema, `pg_temp`, so that no table on the `search_path` can be taken for it.
const STAGE: &str = "_pgarrow_load";

/// The statements of one load, in the order they run between `BEGIN` and `COMMIT`:
/// [`truncate`](LoadStatements::truncate), [`stage`](LoadStatements::stage), [`copy`](LoadStatements::copy) and
/// [`insert`](LoadStatements::insert) (see [`statements`](LoadStatements::statements)), and the query
/// that describes the target ([`describe`](LoadStatements::describe)) before them.
///
/// A plan is made in two steps, as the load learns what it needs:
/// 1. [`LoadStatements::new`], from the target, the input's column names and the mode: every usage
///    error (an upsert's key, an input without columns) is found here, before anything is
///    sent;
/// 2. [`LoadStatements::with_text_columns`], once the target is described and the input columns
///    whose type has no binary encoder are known: those go through the stage as `text` and
///    are cast into their column's type by the insert.
///
/// A load is staged, copying into a temporary table and inserting from it, when it upserts or
/// has text columns; otherwise it copies straight into the target.
///
/// Every name in the statements is quoted ([`quote_ident`], [`TableName::quoted`]); the only
/// other text in them is a text column's type as the server spelled it (`format_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadStatements {
    /// `SELECT <columns> FROM <table>`, described (never run) for the target's columns in the
    /// input's order; a column the target does not have is the server's error, naming it.
    pub(crate) describe: String,
    /// `TRUNCATE <table>`, when the load replaces the rows.
    pub(crate) truncate: Option<String>,
    /// `CREATE TEMPORARY TABLE pg_temp._pgarrow_load ... WITH NO DATA`, when the load is
    /// staged: the input's columns with the target's types, `text` for the text columns.
    pub(crate) stage: Option<String>,
    /// `COPY <table or stage> (<columns>) FROM STDIN (FORMAT binary)`.
    pub(crate) copy: String,
    /// `INSERT INTO <table> (<columns>) SELECT ... FROM <stage>`, with `ON CONFLICT (<key>) DO
    /// UPDATE` (or `DO NOTHING` when every column is in the key) for an upsert, when the load
    /// is staged.
    pub(crate) insert: Option<String>,
    /// `DROP TABLE <stage>` after the insert, when the load is staged.
    pub(crate) drop_stage: Option<String>,
    /// The target.
    table: TableName,
    /// The input's column names, in order.
    columns: Vec<String>,
    /// What the load does with the rows already there.
    mode: LoadMode,
    /// The text columns: the input column's position and the target column's type.
    text: Vec<(usize, String)>,
}

impl LoadStatements {
    /// The plan of a load of `columns` (the input's names, in order) into `table` with `mode`,
    /// every column sent in binary.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`](crate::ErrorKind::Usage): an input without columns; an upsert
    /// without a key, or with a key column the input does not have; an upsert into a table
    /// named as the stage without its schema.
    pub(crate) fn new(
        table: &TableName,
        columns: &[String],
        mode: &LoadMode,
    ) -> Result<LoadStatements> {
        LoadStatements::check(table, columns, mode)?;
        LoadStatements::build(table.clone(), columns.to_vec(), mode.clone(), Vec::new())
    }

    /// The usage errors of [`LoadStatements::new`] that come from the columns and the mode (`table`
    /// only names the target in them), for a load to find before it sends anything, and so
    /// before it names its target exactly.
    ///
    /// # Errors
    /// [`ErrorKind::Usage`](crate::ErrorKind::Usage): an input without columns; an upsert
    /// without a key, or with a key column the input does not have.
    pub(crate) fn check(table: &TableName, columns: &[String], mode: &LoadMode) -> Result<()> {
        if columns.is_empty() {
            return Err(Error::usage(format!(
                "the input has no columns to load into {table}"
            )));
        }
        if let LoadMode::Upsert { key } = mode {
            if key.is_empty() {
                return Err(Error::usage(
                    "an upsert needs a key: the columns of a unique index",
                ));
            }
            if let Some(k) = key.iter().find(|k| !columns.contains(k)) {
                return Err(Error::usage(format!(
                    "the upsert key {} is not among the input's columns ({})",
                    quote_ident(k),
                    names(columns.iter())
                )));
            }
        }
        Ok(())
    }

    /// This plan with the input columns `text` (position, and the target column's type as
    /// `format_type` spells it) sent as text and cast on insert; the load is staged when there
    /// are any.
    ///
    /// # Errors
    /// [`ErrorKind::Internal`](crate::ErrorKind::Internal): a position past the input's
    /// columns; [`ErrorKind::Usage`](crate::ErrorKind::Usage) as [`LoadStatements::new`].
    pub(crate) fn with_text_columns(self, text: &[(usize, &str)]) -> Result<LoadStatements> {
        if let Some((i, _)) = text.iter().find(|(i, _)| *i >= self.columns.len()) {
            return Err(Error::internal(format!(
                "text column {i} of an input of {} columns",
                self.columns.len()
            )));
        }
        let text = text.iter().map(|&(i, t)| (i, t.to_owned())).collect();
        LoadStatements::build(self.table, self.columns, self.mode, text)
    }

    /// The plan's statements once the inputs are checked.
    fn build(
        table: TableName,
        columns: Vec<String>,
        mode: LoadMode,
        text: Vec<(usize, String)>,
    ) -> Result<LoadStatements> {
        let target = table.quoted();
        let list = names_quoted(columns.iter());
        let describe = format!("SELECT {list} FROM {target}");
        let truncate = (mode == LoadMode::Replace).then(|| format!("TRUNCATE {target}"));
        let text_type = |i: usize| text.iter().find(|(j, _)| *j == i).map(|(_, t)| t.as_str());
        let staged = !text.is_empty() || matches!(mode, LoadMode::Upsert { .. });
        if !staged {
            let copy = format!("COPY {target} ({list}) FROM STDIN (FORMAT binary)");
            return Ok(LoadStatements {
                describe,
                truncate,
                stage: None,
                copy,
                insert: None,
                drop_stage: None,
                table,
                columns,
                mode,
                text,
            });
        }
        // Unqualified, the target would be found in `pg_temp` (searched first) once the stage
        // exists, and the rows would go into the stage, dropped at COMMIT. A load names its
        // target with its schema (`write_target`) before it plans; this guards the plan.
        if table.schema.is_none() && table.name == STAGE {
            return Err(Error::usage(format!(
                "a load into {table} needs the table's schema (schema.{table}): pgarrow's \
                 temporary table has that name"
            )));
        }
        let stage = format!("pg_temp.{}", quote_ident(STAGE));
        // The stage's columns have the target's types, but `text` where the values are text.
        let select = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match text_type(i) {
                Some(_) => format!("CAST({0} AS text) AS {0}", quote_ident(c)),
                None => quote_ident(c),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let create = format!(
            "CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS SELECT {select} FROM {target} WITH \
             NO DATA"
        );
        let copy = format!("COPY {stage} ({list}) FROM STDIN (FORMAT binary)");
        let values = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match text_type(i) {
                Some(t) => format!("CAST({} AS {t})", quote_ident(c)),
                None => quote_ident(c),
            })
            .collect::<Vec<_>>()
            .join(", ");
        // OVERRIDING SYSTEM VALUE: an identity column GENERATED ALWAYS takes the input's values,
        // as COPY gives them to it when the load is not staged (no effect on other columns).
        let mut insert = format!(
            "INSERT INTO {target} ({list}) OVERRIDING SYSTEM VALUE SELECT {values} FROM {stage}"
        );
        if let LoadMode::Upsert { key } = &mode {
            let updates = columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                .collect::<Vec<_>>();
            let action = match updates.is_empty() {
                true => "NOTHING".to_owned(),
                false => format!("UPDATE SET {}", updates.join(", ")),
            };
            let keys = names_quoted(key.iter());
            insert.push_str(&format!(" ON CONFLICT ({keys}) DO {action}"));
        }
        Ok(LoadStatements {
            describe,
            truncate,
            stage: Some(create),
            copy,
            insert: Some(insert),
            drop_stage: Some(format!("DROP TABLE {stage}")),
            table,
            columns,
            mode,
            text,
        })
    }

    /// The statements that run before the COPY ([`truncate`](LoadStatements::truncate),
    /// [`stage`](LoadStatements::stage)), in order.
    pub(crate) fn before_copy(&self) -> impl Iterator<Item = &str> {
        [&self.truncate, &self.stage]
            .into_iter()
            .filter_map(|s| s.as_deref())
    }

    /// Every statement, in the order the load runs them (the COPY's data goes where
    /// [`copy`](LoadStatements::copy) is).
    #[cfg(test)]
    pub(crate) fn statements(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.before_copy().collect();
        all.push(&self.copy);
        all.extend(self.insert.as_deref());
        all.extend(self.drop_stage.as_deref());
        all
    }

    /// The error of the [`insert`](LoadStatements::insert), explained when it cast text columns (the
    /// server's input function names the value but not the row or the column).
    pub(crate) fn insert_failed(&self, e: Error) -> Error {
        match self.text.is_empty() {
            true => e,
            false => e.context(format!(
                "casting the text columns ({}) into their types",
                names(self.text.iter().filter_map(|(i, _)| self.columns.get(*i)))
            )),
        }
    }
}

/// `"a", "b"`: names quoted for SQL, comma-separated.
fn names_quoted<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
}

/// `a, "B c"`: names for people, quoted only where SQL would need it.
fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(|c| plain_ident(c)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|&n| n.to_owned()).collect()
    }

    fn upsert(key: &[&str]) -> LoadMode {
        LoadMode::Upsert { key: cols(key) }
    }

    fn t(name: &str) -> TableName {
        TableName::new(None::<String>, name)
    }

    #[test]
    fn an_append_copies_into_the_table() {
        let plan = LoadStatements::new(&t("t"), &cols(&["id", "v"]), &LoadMode::Append).unwrap();
        assert_eq!(plan.describe, r#"SELECT "id", "v" FROM "t""#);
        assert_eq!(
            plan.statements(),
            [r#"COPY "t" ("id", "v") FROM STDIN (FORMAT binary)"#]
        );
    }

    #[test]
    fn a_replace_truncates_first() {
        let plan = LoadStatements::new(&t("t"), &cols(&["id"]), &LoadMode::Replace).unwrap();
        assert_eq!(
            plan.statements(),
            [
                r#"TRUNCATE "t""#,
                r#"COPY "t" ("id") FROM STDIN (FORMAT binary)"#
            ]
        );
    }

    #[test]
    fn an_upsert_goes_through_the_stage() {
        let plan =
            LoadStatements::new(&t("t"), &cols(&["id", "v", "w x"]), &upsert(&["id"])).unwrap();
        assert_eq!(
            plan.statements(),
            [
                r#"CREATE TEMPORARY TABLE pg_temp."_pgarrow_load" ON COMMIT DROP AS SELECT "id", "v", "w x" FROM "t" WITH NO DATA"#,
                r#"COPY pg_temp."_pgarrow_load" ("id", "v", "w x") FROM STDIN (FORMAT binary)"#,
                r#"INSERT INTO "t" ("id", "v", "w x") OVERRIDING SYSTEM VALUE SELECT "id", "v", "w x" FROM pg_temp."_pgarrow_load" ON CONFLICT ("id") DO UPDATE SET "v" = EXCLUDED."v", "w x" = EXCLUDED."w x""#,
                r#"DROP TABLE pg_temp."_pgarrow_load""#,
            ]
        );
    }

    #[test]
    fn an_upsert_of_key_columns_only_does_nothing_on_conflict() {
        let plan = LoadStatements::new(&t("t"), &cols(&["a", "b"]), &upsert(&["b", "a"])).unwrap();
        assert_eq!(
            plan.insert.as_deref(),
            Some(
                r#"INSERT INTO "t" ("a", "b") OVERRIDING SYSTEM VALUE SELECT "a", "b" FROM pg_temp."_pgarrow_load" ON CONFLICT ("b", "a") DO NOTHING"#
            )
        );
    }

    #[test]
    fn text_columns_are_staged_as_text_and_cast_on_insert() {
        let plan = LoadStatements::new(&t("t"), &cols(&["id", "addr", "bits"]), &LoadMode::Replace)
            .unwrap()
            .with_text_columns(&[(1, "inet"), (2, "bit varying(8)[]")])
            .unwrap();
        assert_eq!(
            plan.statements(),
            [
                r#"TRUNCATE "t""#,
                r#"CREATE TEMPORARY TABLE pg_temp."_pgarrow_load" ON COMMIT DROP AS SELECT "id", CAST("addr" AS text) AS "addr", CAST("bits" AS text) AS "bits" FROM "t" WITH NO DATA"#,
                r#"COPY pg_temp."_pgarrow_load" ("id", "addr", "bits") FROM STDIN (FORMAT binary)"#,
                r#"INSERT INTO "t" ("id", "addr", "bits") OVERRIDING SYSTEM VALUE SELECT "id", CAST("addr" AS inet), CAST("bits" AS bit varying(8)[]) FROM pg_temp."_pgarrow_load""#,
                r#"DROP TABLE pg_temp."_pgarrow_load""#,
            ]
        );
        // An upsert with text columns: the same stage, the cast in the upsert.
        let plan = LoadStatements::new(&t("t"), &cols(&["id", "addr"]), &upsert(&["id"]))
            .unwrap()
            .with_text_columns(&[(1, "inet")])
            .unwrap();
        assert_eq!(
            plan.insert.as_deref(),
            Some(
                r#"INSERT INTO "t" ("id", "addr") OVERRIDING SYSTEM VALUE SELECT "id", CAST("addr" AS inet) FROM pg_temp."_pgarrow_load" ON CONFLICT ("id") DO UPDATE SET "addr" = EXCLUDED."addr""#
            )
        );
        // No text columns: the plan is the one made without them.
        let plain = LoadStatements::new(&t("t"), &cols(&["id"]), &LoadMode::Append).unwrap();
        assert_eq!(plain.clone().with_text_columns(&[]).unwrap(), plain);
    }

    #[test]
    fn odd_names_are_quoted_everywhere() {
        let table = TableName::new(Some("My \"Schema\".x"), "Tab le");
        let columns = cols(&["Id", "a.b", "we\"ird", "sp ace"]);
        let plan = LoadStatements::new(&table, &columns, &upsert(&["Id", "we\"ird"]))
            .unwrap()
            .with_text_columns(&[(3, "\"My Type\"")])
            .unwrap();
        let target = r#""My ""Schema"".x"."Tab le""#;
        let list = r#""Id", "a.b", "we""ird", "sp ace""#;
        assert_eq!(plan.describe, format!("SELECT {list} FROM {target}"));
        assert_eq!(
            plan.statements(),
            [
                format!(
                    r#"CREATE TEMPORARY TABLE pg_temp."_pgarrow_load" ON COMMIT DROP AS SELECT "Id", "a.b", "we""ird", CAST("sp ace" AS text) AS "sp ace" FROM {target} WITH NO DATA"#
                ),
                format!(r#"COPY pg_temp."_pgarrow_load" ({list}) FROM STDIN (FORMAT binary)"#),
                format!(
                    r#"INSERT INTO {target} ({list}) OVERRIDING SYSTEM VALUE SELECT "Id", "a.b", "we""ird", CAST("sp ace" AS "My Type") FROM pg_temp."_pgarrow_load" ON CONFLICT ("Id", "we""ird") DO UPDATE SET "a.b" = EXCLUDED."a.b", "sp ace" = EXCLUDED."sp ace""#
                ),
                r#"DROP TABLE pg_temp."_pgarrow_load""#.to_owned(),
            ]
        );
        let plan = LoadStatements::new(&table, &columns, &LoadMode::Replace).unwrap();
        assert_eq!(
            plan.statements(),
            [
                format!("TRUNCATE {target}"),
                format!("COPY {target} ({list}) FROM STDIN (FORMAT binary)"),
            ]
        );
    }

    #[test]
    fn usage_errors_come_from_the_plan() {
        let columns = cols(&["id", "Va l"]);
        let e = LoadStatements::new(&t("t"), &columns, &upsert(&[])).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("needs a key"), "{e}");
        let e = LoadStatements::new(&t("t"), &columns, &upsert(&["id", "nope"])).unwrap_err();
        assert!(e.is_usage(), "{e}");
        assert_eq!(
            e.to_string(),
            r#"the upsert key "nope" is not among the input's columns (id, "Va l")"#
        );
        // Key names are exact, as column names are.
        assert!(LoadStatements::new(&t("t"), &columns, &upsert(&["va l"])).is_err());
        let e = LoadStatements::new(&t("t"), &[], &LoadMode::Append).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("no columns"), "{e}");
    }

    #[test]
    fn a_target_named_as_the_stage_needs_its_schema_when_staged() {
        let columns = cols(&["id", "v"]);
        let e = LoadStatements::new(&t(STAGE), &columns, &upsert(&["id"])).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("schema"), "{e}");
        let text = LoadStatements::new(&t(STAGE), &columns, &LoadMode::Append).unwrap();
        assert!(
            text.with_text_columns(&[(1, "inet")])
                .unwrap_err()
                .is_usage()
        );
        let qualified = TableName::new(Some("public"), STAGE);
        let plan = LoadStatements::new(&qualified, &columns, &upsert(&["id"])).unwrap();
        assert!(
            plan.insert
                .unwrap()
                .starts_with(r#"INSERT INTO "public"."_pgarrow_load" ("id", "v")"#)
        );
    }

    #[test]
    fn text_columns_past_the_input_are_a_bug() {
        let plan = LoadStatements::new(&t("t"), &cols(&["id"]), &LoadMode::Append).unwrap();
        let e = plan.with_text_columns(&[(1, "inet")]).unwrap_err();
        assert_eq!(e.category(), crate::Category::Internal);
    }

    #[test]
    fn a_failed_cast_names_the_text_columns() {
        let columns = cols(&["id", "Addr", "b"]);
        let plan = LoadStatements::new(&t("t"), &columns, &LoadMode::Append).unwrap();
        assert_eq!(plan.insert_failed(Error::usage("x")).to_string(), "x");
        let plan = plan.with_text_columns(&[(1, "inet"), (2, "bit")]).unwrap();
        assert_eq!(
            plan.insert_failed(Error::usage("x")).to_string(),
            r#"casting the text columns ("Addr", b) into their types: x"#
        );
    }
}
