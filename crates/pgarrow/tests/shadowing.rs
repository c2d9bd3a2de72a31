//! No load is shadowed by a temporary table. A table named without its schema resolves through
//! the search path, where the session's temporary schema (`pg_temp`) is searched first: a
//! temporary table of the same name would take the rows (and a replace would empty it), and a
//! created table would be a temporary one where `pg_temp` leads the search path, gone with the
//! session. pgarrow names the table exactly before it writes: the first schema of the explicit
//! search path (`current_schemas(false)`, less `pg_temp`) that has a relation of that name,
//! else, to create it, the first schema of that path. `pg_temp.name` means the temporary table.
//!
//! Every test runs the load on a session where a temporary table of the same name exists (a
//! caller of [`Client::load`] can make one: [`Client::connection`]), or where the search path
//! puts `pg_temp` first (any door: the URL's `options`, a role's setting).

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::Db;
use pgarrow::blocking::copy;
use pgarrow::{Client, CopyOptions, Hooks, LoadMode, LoadOptions, Source};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn schema(second: (&str, DataType)) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(second.0, second.1, true),
    ]))
}

/// `id int8, v text`, `id` the primary key of a table created from it.
fn keyed() -> Arc<Schema> {
    let key = [("pgarrow.primary_key".to_owned(), "1".to_owned())];
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false).with_metadata(key),
        Field::new("v", DataType::Utf8, true),
    ]))
}

/// Rows `(id, v)` of [`keyed`].
fn batch(ids: &[i64], v: &[&str]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from(v.to_vec())),
    ];
    RecordBatch::try_new(keyed(), columns).unwrap()
}

/// Runs `sql` on the client's session: the rows, `|` between values, a line each.
async fn on_session(client: &mut Client, sql: &str) -> String {
    let rows = client
        .connection()
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|r| {
            let fields: Vec<String> = r.into_iter().map(Option::unwrap_or_default).collect();
            fields.join("|") + "\n"
        })
        .collect()
}

fn upsert() -> LoadMode {
    LoadMode::Upsert {
        key: vec!["id".into()],
    }
}

const PERMANENT: &str = "CREATE TABLE t (id int8 PRIMARY KEY, v text);
                         INSERT INTO t VALUES (1, 'one');
                         CREATE TABLE n (id int8 PRIMARY KEY, ip inet);";

#[test]
fn a_temporary_table_of_the_same_name_never_takes_the_rows() {
    let Some(db) = Db::with("shadow_modes", PERMANENT) else {
        return;
    };
    runtime().block_on(async {
        let mut client = db.client().await;
        on_session(
            &mut client,
            "CREATE TEMP TABLE t (id int8 PRIMARY KEY, v text);
             INSERT INTO t VALUES (99, 'temp');
             CREATE TEMP TABLE n (id int8 PRIMARY KEY, ip inet);
             INSERT INTO n VALUES (99, '10.9.9.9')",
        )
        .await;
        let temp = "SELECT id, v FROM pg_temp.t ORDER BY id";
        let plain = keyed();
        // Append: straight COPY.
        let stats = client
            .load(
                "t",
                &plain,
                vec![Ok(batch(&[2], &["two"]))],
                LoadMode::Append,
            )
            .await
            .unwrap();
        assert_eq!(stats.rows, 1);
        assert_eq!(
            db.psql("SELECT id, v FROM public.t ORDER BY id"),
            "1|one\n2|two\n"
        );
        assert_eq!(on_session(&mut client, temp).await, "99|temp\n");
        // Upsert: through pgarrow's own temporary table, then INSERT ... ON CONFLICT.
        let rows = vec![Ok(batch(&[2, 3], &["TWO", "three"]))];
        client.load("t", &plain, rows, upsert()).await.unwrap();
        assert_eq!(
            db.psql("SELECT id, v FROM public.t ORDER BY id"),
            "1|one\n2|TWO\n3|three\n"
        );
        assert_eq!(on_session(&mut client, temp).await, "99|temp\n");
        // Replace: the TRUNCATE is the permanent table's; the temporary one keeps its row.
        let rows = vec![Ok(batch(&[5], &["five"]))];
        client
            .load("t", &plain, rows, LoadMode::Replace)
            .await
            .unwrap();
        assert_eq!(
            db.psql("SELECT id, v FROM public.t ORDER BY id"),
            "5|five\n"
        );
        assert_eq!(on_session(&mut client, temp).await, "99|temp\n");
        // Create: the permanent table exists, so nothing is created; the rows go into it.
        let create = LoadOptions::new(LoadMode::Append).with_create(true);
        let rows = vec![Ok(batch(&[6], &["six"]))];
        client.load("t", &plain, rows, &create).await.unwrap();
        assert_eq!(
            db.psql("SELECT id, v FROM public.t ORDER BY id"),
            "5|five\n6|six\n"
        );
        assert_eq!(on_session(&mut client, temp).await, "99|temp\n");
        // Inside the caller's transaction (the load is a savepoint of it).
        on_session(&mut client, "BEGIN").await;
        let rows = vec![Ok(batch(&[7], &["seven"]))];
        client
            .load("t", &plain, rows, LoadMode::Replace)
            .await
            .unwrap();
        on_session(&mut client, "COMMIT").await;
        assert_eq!(
            db.psql("SELECT id, v FROM public.t ORDER BY id"),
            "7|seven\n"
        );
        assert_eq!(on_session(&mut client, temp).await, "99|temp\n");
        // Text columns (inet has no binary encoder) are staged and cast by an INSERT.
        let inet = schema(("ip", DataType::Utf8));
        let b = RecordBatch::try_new(
            inet.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1])) as ArrayRef,
                Arc::new(StringArray::from(vec!["10.0.0.1"])),
            ],
        )
        .unwrap();
        client
            .load("n", &inet, vec![Ok(b)], LoadMode::Replace)
            .await
            .unwrap();
        assert_eq!(db.psql("SELECT id, ip FROM public.n"), "1|10.0.0.1\n");
        assert_eq!(
            on_session(&mut client, "SELECT id, ip FROM pg_temp.n").await,
            "99|10.9.9.9\n"
        );
        // Named with its schema, the temporary table is the one written.
        let rows = vec![Ok(batch(&[100], &["temp too"]))];
        client
            .load("pg_temp.t", &plain, rows, LoadMode::Append)
            .await
            .unwrap();
        assert_eq!(
            on_session(&mut client, temp).await,
            "99|temp\n100|temp too\n"
        );
        assert_eq!(
            db.psql("SELECT id, v FROM public.t ORDER BY id"),
            "7|seven\n"
        );
        // A bare name that is pgarrow's own temporary table's (an upsert's stage, in pg_temp)
        // means the permanent table too.
        db.psql("CREATE TABLE public._pgarrow_load (id int8 PRIMARY KEY, v text)");
        let rows = vec![Ok(batch(&[1], &["one"]))];
        client
            .load("_pgarrow_load", &plain, rows, upsert())
            .await
            .unwrap();
        assert_eq!(db.psql("SELECT id, v FROM public._pgarrow_load"), "1|one\n");
    });
}

#[test]
fn a_missing_table_is_created_on_the_search_path_never_in_pg_temp() {
    let Some(db) = Db::new("shadow_create") else {
        return;
    };
    let plain = keyed();
    let create = LoadOptions::new(LoadMode::Append).with_create(true);
    let permanent = |table: &str| {
        db.psql(&format!(
            "SELECT relpersistence FROM pg_catalog.pg_class WHERE oid = 'public.{table}'::regclass"
        ))
    };
    runtime().block_on(async {
        let mut client = db.client().await;
        // Only a temporary table of that name: the permanent one is created beside it.
        on_session(
            &mut client,
            "CREATE TEMP TABLE fresh (id int8, v text); INSERT INTO fresh VALUES (99, 'temp')",
        )
        .await;
        let rows = vec![Ok(batch(&[1], &["one"]))];
        client.load("fresh", &plain, rows, &create).await.unwrap();
        assert_eq!(permanent("fresh"), "p\n");
        assert_eq!(db.psql("SELECT id, v FROM public.fresh"), "1|one\n");
        assert_eq!(
            on_session(&mut client, "SELECT id, v FROM pg_temp.fresh").await,
            "99|temp\n"
        );
        // pg_temp first on the search path: CREATE TABLE of a bare name would make a
        // temporary table, dropped with the session. The table is created in public.
        on_session(&mut client, "SET search_path = pg_temp, public").await;
        for (table, mode) in [
            ("made", LoadMode::Append),
            ("made_replace", LoadMode::Replace),
            ("made_upsert", upsert()),
        ] {
            let options = LoadOptions::new(mode).with_create(true);
            let rows = vec![Ok(batch(&[1], &["one"]))];
            client.load(table, &plain, rows, &options).await.unwrap();
            assert_eq!(permanent(table), "p\n", "{table}");
            assert_eq!(
                db.psql(&format!("SELECT id, v FROM public.{table}")),
                "1|one\n"
            );
        }
        // The existing table is found in public too, past pg_temp.
        let rows = vec![Ok(batch(&[2], &["two"]))];
        client
            .load("made", &plain, rows, LoadMode::Append)
            .await
            .unwrap();
        assert_eq!(db.psql("SELECT count(*) FROM public.made"), "2\n");
    });
}

#[test]
fn the_first_schema_of_the_search_path_that_has_the_table() {
    let Some(db) = Db::with(
        "shadow_path",
        "CREATE SCHEMA a; CREATE SCHEMA b; CREATE TABLE b.t (id int8 PRIMARY KEY, v text);",
    ) else {
        return;
    };
    let plain = keyed();
    runtime().block_on(async {
        let mut client = db.client().await;
        on_session(
            &mut client,
            "SET search_path = a, b; CREATE TEMP TABLE t (id int8 PRIMARY KEY, v text)",
        )
        .await;
        // b has t (a does not): the rows go into b.t.
        let rows = vec![Ok(batch(&[1], &["one"]))];
        client.load("t", &plain, rows, upsert()).await.unwrap();
        assert_eq!(db.psql("SELECT id, v FROM b.t"), "1|one\n");
        assert_eq!(
            on_session(&mut client, "SELECT count(*) FROM pg_temp.t").await,
            "0\n"
        );
        // A table no schema has is created in the first: a.
        let create = LoadOptions::new(LoadMode::Append).with_create(true);
        let rows = vec![Ok(batch(&[1], &["one"]))];
        client.load("u", &plain, rows, &create).await.unwrap();
        assert_eq!(db.psql("SELECT id, v FROM a.u"), "1|one\n");
        // A search path of pg_temp alone names no schema for it: refused, naming the fix.
        on_session(&mut client, "SET search_path = pg_temp").await;
        let rows = vec![Ok(batch(&[2], &["two"]))];
        let e = client
            .load("t", &plain, rows, LoadMode::Append)
            .await
            .unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("schema.t"), "{e}");
        assert_eq!(
            on_session(&mut client, "SELECT count(*) FROM pg_temp.t").await,
            "0\n"
        );
        assert_eq!(db.psql("SELECT count(*) FROM b.t"), "1\n");
    });
}

#[test]
fn a_copy_into_a_target_whose_search_path_starts_with_pg_temp() {
    let Some(db) = Db::with(
        "shadow_copy",
        "CREATE TABLE src AS SELECT g::int8 AS id, g::text AS v FROM generate_series(1, 3) g;
         CREATE TABLE t (id int8 PRIMARY KEY, v text);",
    ) else {
        return;
    };
    // The target's session puts pg_temp first, as a role's setting or PGOPTIONS would.
    let to = format!("{}?options=-csearch_path%3Dpg_temp%2Cpublic", db.url());
    let run = |into: &str, options: &CopyOptions| {
        copy(
            db.url(),
            Source::table("src").unwrap(),
            to.as_str(),
            into,
            options,
            Hooks::new(),
        )
        .map(|s| s.load.rows)
    };
    let create = CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true));
    assert_eq!(run("copied", &create).unwrap(), 3);
    assert_eq!(
        db.psql("SELECT relpersistence, count(*) FROM public.copied, pg_class WHERE oid = 'public.copied'::regclass GROUP BY 1"),
        "p|3\n"
    );
    for mode in [LoadMode::Append, LoadMode::Replace, upsert()] {
        let name = mode.name();
        assert_eq!(
            run("t", &CopyOptions::new(mode.into())).unwrap(),
            3,
            "{name}"
        );
        assert_eq!(db.psql("SELECT count(*) FROM public.t"), "3\n", "{name}");
    }
}
