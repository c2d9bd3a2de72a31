//! The engine calls that every door shares, against a real server: several tables in one
//! snapshot into a directory with a manifest, loading exactly what a manifest lists, copying
//! between databases, and one `Stop` for each of them.

use pgarrow::blocking;
use pgarrow::io::Format;
use pgarrow::io::{DirTarget, Input, InputOptions, MANIFEST_NAME, Manifest};
use pgarrow::names::{TableName, TablePattern};
use pgarrow::partition::{PartitionOptions, export_to_dir};
use pgarrow::{
    CopyOptions, Domains, ExportOptions, Hooks, LoadMode, LoadOptions, Source, Stop, TablesExport,
};
use pgarrow_testkit::Cluster;

/// A new database with two tables in schema `s` and one in `other`; its URL and cluster.
fn setup(prefix: &str) -> Option<(&'static Cluster, String, String)> {
    let pg = Cluster::shared()?;
    let db = pg.create_database(prefix).unwrap();
    pg.psql(
        &db,
        "CREATE SCHEMA s; CREATE SCHEMA other;
         CREATE TABLE s.a AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 3000) g;
         CREATE TABLE s.\"B\" AS SELECT g AS id FROM generate_series(1, 7) g;
         CREATE TABLE other.c AS SELECT 1 AS one;",
    )
    .unwrap();
    Some((pg, pg.url(&db), db))
}

fn count(pg: &Cluster, db: &str, table: &str) -> u64 {
    pg.psql(db, &format!("SELECT count(*) FROM {table}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    blocking::runtime().unwrap()
}

#[test]
fn several_tables_go_to_one_directory_in_one_snapshot_with_one_manifest() {
    let Some((_pg, url, _db)) = setup("engine_tables") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let patterns = [TablePattern::schema("s").unwrap()];
    let target = DirTarget::new(dir.path(), Format::Parquet);
    let rt = runtime();
    let stats = rt
        .block_on(pgarrow::export_tables(
            &url,
            &patterns,
            &ExportOptions::default(),
            target,
            Hooks::new(),
        ))
        .unwrap();
    let manifest = Manifest::read(dir.path()).unwrap();
    assert_eq!(manifest, stats.manifest);
    assert_eq!(manifest.pgarrow_manifest, pgarrow::io::MANIFEST_VERSION);
    assert!(manifest.snapshot.is_some() && manifest.wal_lsn.is_some());
    let tables: Vec<String> = manifest
        .files
        .iter()
        .map(|f| f.table.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(tables, ["s.\"B\"", "s.a"]);
    assert_eq!(manifest.rows, 3007);
    for f in &manifest.files {
        assert!(dir.path().join(&f.path).exists(), "{}", f.path);
        assert_eq!(f.part, None);
    }
    // The document form holds the manifest's fields and where it is.
    let json: serde_json::Value = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["rows"], 3007);
    assert_eq!(json["files"].as_array().unwrap().len(), 2);
    assert!(json["manifest"].as_str().unwrap().ends_with(MANIFEST_NAME));
}

#[test]
fn an_unfinished_export_of_several_tables_leaves_no_file_and_no_manifest() {
    let Some((_pg, url, _db)) = setup("engine_tables_drop") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let patterns = [TablePattern::parse("s.*").unwrap()];
    let target = DirTarget::new(dir.path(), Format::ArrowFile);
    let mut export = rt
        .block_on(TablesExport::begin(&url, &patterns, target))
        .unwrap();
    assert_eq!(export.tables().len(), 2);
    let first = rt
        .block_on(export.export_next(&ExportOptions::default(), Hooks::new()))
        .unwrap()
        .unwrap();
    assert_eq!(first.1.rows, 7);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Finishing early is refused; dropping removes what was written.
    drop(export);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A stopped export: cancelled, and nothing left either.
    let stop = Stop::new();
    stop.stop();
    let target = DirTarget::new(dir.path(), Format::Parquet);
    let hooks = Hooks::new().with_stop(stop);
    let e = rt
        .block_on(pgarrow::export_tables(
            &url,
            &patterns,
            &ExportOptions::default(),
            target,
            hooks,
        ))
        .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert!(!dir.path().join(MANIFEST_NAME).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_manifest_directory_loads_exactly_its_files_and_checks_their_rows() {
    let Some((pg, url, db)) = setup("engine_import_dir") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let target = DirTarget::new(dir.path(), Format::Parquet);
    rt.block_on(export_to_dir(
        &url,
        Source::table("s.a").unwrap(),
        &ExportOptions::default(),
        &PartitionOptions::new(2).with_parts(3),
        &target,
        Hooks::new(),
    ))
    .unwrap();
    // A stray file the manifest does not list is not loaded.
    std::fs::copy(
        dir.path().join("part-00000.parquet"),
        dir.path().join("stray.parquet"),
    )
    .unwrap();
    pg.psql(&db, "CREATE TABLE s.copy (id int, h text)")
        .unwrap();
    let input = Input::open(&[dir.path().to_owned()], &InputOptions::default()).unwrap();
    let stats = blocking::load(
        &url,
        "s.copy",
        input,
        &LoadOptions::new(LoadMode::Append),
        Hooks::new(),
    )
    .unwrap();
    assert_eq!(stats.rows, 3000);
    assert_eq!(count(pg, &db, "s.copy"), 3000);

    // A manifest whose counts do not match its files fails the load, which loads nothing.
    let text = std::fs::read_to_string(dir.path().join(MANIFEST_NAME)).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["files"][0]["rows"] = serde_json::json!(1);
    std::fs::write(dir.path().join(MANIFEST_NAME), manifest.to_string()).unwrap();
    let input = Input::open(&[dir.path().to_owned()], &InputOptions::default()).unwrap();
    let e = blocking::load(
        &url,
        "s.copy",
        input,
        &LoadOptions::new(LoadMode::Append),
        Hooks::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("its manifest says 1"), "{e}");
    assert_eq!(count(pg, &db, "s.copy"), 3000);
}

#[test]
fn copy_moves_a_table_between_databases_in_one_transaction() {
    let Some((pg, url, db)) = setup("engine_copy_from") else {
        return;
    };
    let target_db = pg.create_database("engine_copy_to").unwrap();
    let to = pg.url(&target_db);
    let options = CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true))
        .with_partitions(Some(PartitionOptions::new(2)));
    let stats = blocking::copy(
        &url,
        Source::table("s.a").unwrap(),
        &to,
        TableName::new(Some("public"), "a"),
        &options,
        Hooks::new(),
    )
    .unwrap();
    assert_eq!(stats.load.rows, 3000);
    assert_eq!(stats.source.rows, 3000);
    assert_eq!(count(pg, &target_db, "public.a"), 3000);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["rows"], 3000);
    assert_eq!(json["source"]["rows"], 3000);

    // A failing source: the target is as it was, and the error says it was the source.
    let e = blocking::copy(
        &url,
        Source::query("SELECT 1 / (g - 2000) AS x FROM generate_series(1, 3000) g"),
        &to,
        "x_target",
        &CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true)),
        Hooks::new(),
    )
    .unwrap_err();
    assert_eq!(e.code(), Some("22012"), "{e}");
    assert!(e.to_string().contains("the source"), "{e}");
    assert!(
        pg.psql(&target_db, "SELECT to_regclass('x_target') IS NULL")
            .unwrap()
            .trim()
            == "t"
    );

    // A target that cannot be reached, or that has no such table: the copy fails before the
    // source is read (the source's query would advance the sequence).
    pg.psql(&db, "CREATE SEQUENCE copy_probe").unwrap();
    let probe = Source::query("SELECT nextval('copy_probe') AS n FROM generate_series(1, 10)");
    let no_db = to.rsplit_once('/').unwrap().0.to_owned() + "/no_such_database";
    let e = blocking::copy(
        &url,
        probe.clone(),
        &no_db,
        "n_target",
        &CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true)),
        Hooks::new(),
    )
    .unwrap_err();
    assert_eq!(e.code(), Some("3D000"), "{e}");
    assert!(e.to_string().contains("the target"), "{e}");
    let e = blocking::copy(
        &url,
        probe,
        &to,
        "no_such_table",
        &CopyOptions::new(LoadOptions::new(LoadMode::Append)),
        Hooks::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no_such_table"), "{e}");
    let used = pg.psql(&db, "SELECT is_called FROM copy_probe").unwrap();
    assert_eq!(used.trim(), "f", "the source's query ran");

    // Stopped before it starts: cancelled, nothing loaded.
    let stop = Stop::new();
    stop.stop();
    let e = blocking::copy(
        &url,
        Source::table("s.a").unwrap(),
        &to,
        "public.a",
        &CopyOptions::default(),
        Hooks::new().with_stop(stop.clone()),
    )
    .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert_eq!(count(pg, &target_db, "public.a"), 3000);
}

#[test]
fn errors_say_what_the_caller_can_do() {
    let Some((_pg, url, _db)) = setup("engine_errors") else {
        return;
    };
    let rt = runtime();
    let no_db = url.rsplit_once('/').unwrap().0.to_owned() + "/no_such_database";
    let e = rt.block_on(pgarrow::Client::connect(&no_db)).unwrap_err();
    assert!(e.is_connection(), "{e}");
    assert_eq!(e.code(), Some("3D000"));
    let e = rt
        .block_on(pgarrow::Client::connect("postgresql://x:notaport/db"))
        .unwrap_err();
    assert!(e.is_usage(), "{e}");
    let mut client = rt.block_on(pgarrow::Client::connect(&url)).unwrap();
    let e = rt
        .block_on(client.describe(&Source::query("SELECT * FROM no_such_table")))
        .unwrap_err();
    assert_eq!(e.category(), pgarrow::Category::Server, "{e}");
    let e = rt
        .block_on(client.describe(&Source::query("CREATE TABLE x (a int)")))
        .unwrap_err();
    assert!(e.is_usage(), "{e}");
    let e = pgarrow::names::TablePattern::parse("a.b.c").unwrap_err();
    assert!(e.is_usage(), "{e}");
}

/// Arrays with bounds and mixed depths, domains, enums, composites and ranges (of
/// timestamps too) go PG -> PG by `copy`, and PG -> Parquet -> PG (exported with their exact
/// text where Arrow has no place for them), into a database holding the types but not the
/// table: equal by the server's rendering of every row.
#[test]
fn arrays_with_bounds_and_user_types_round_trip_exactly() {
    let Some((pg, url, db)) = setup("engine_round_from") else {
        return;
    };
    // Types in two schemas, one needing another, with what their definitions can carry:
    // a quoted name, a collation, a default, NOT NULL, checks, a subtype_diff, a multirange
    // with its own name.
    let types = "CREATE SCHEMA kinds;
         CREATE TYPE mood AS ENUM ('sad', 'ok', 'it''s');
         CREATE TYPE pair AS (a int, at timestamp);
         CREATE TYPE stamps AS RANGE (subtype = timestamp);
         CREATE DOMAIN pos AS int CHECK (VALUE > 0);
         CREATE DOMAIN kinds.\"Label\" AS varchar(8) COLLATE \"C\" DEFAULT 'x' NOT NULL
             CONSTRAINT not_blank CHECK (VALUE <> '') CHECK (length(VALUE) < 7);
         CREATE TYPE kinds.nest AS (m mood, ps pos[], l kinds.\"Label\", t text COLLATE \"C\");
         CREATE TYPE floaty AS RANGE (subtype = float8, subtype_diff = float8mi,
                                      multirange_type_name = floaties);";
    pg.psql(&db, types).unwrap();
    pg.psql(
        &db,
        "CREATE TABLE r (id int PRIMARY KEY, lb int4[], mixed int4[] NOT NULL, ts timestamp[],
                         m mood, ms mood[],
                         p pair, rg stamps, d pos, dd pos[], t24 time, n numeric(6,2),
                         nn kinds.nest, fr floaty, fs floaties, lb2 kinds.\"Label\"[]);
         INSERT INTO r VALUES
          (1, '[0:2]={7,8,9}', '{1}', '{\"2020-01-02 03:04:05.5\",NULL}', 'ok', '[2:3]={sad,ok}',
              ROW(1, '2020-01-01 00:00'), '[2020-01-01,2020-02-01)', 5, '{1,2}', '24:00', 'NaN',
              ROW('it''s', '{1,2}', 'ab', 'z'), '[1.5,2.5)', '{[1,2),[3,4)}', '{a,b}'),
          (2, '[-3:-2][1:1]={{1},{2}}', '{{1,2},{3,4}}', '{}', NULL, NULL, ROW(NULL, NULL),
              'empty', NULL, '[0:0]={3}', '00:00', 1.5, ROW(NULL, NULL, 'x', NULL), 'empty',
              '{}', '{}'),
          (3, NULL, '{}', NULL, 'sad', '{}', NULL, NULL, 1, NULL, NULL, NULL, NULL, NULL,
              NULL, NULL);",
    )
    .unwrap();
    let render = |db: &str, table: &str| {
        pg.psql(
            db,
            &format!("SELECT {table}::text FROM {table} ORDER BY id"),
        )
        .unwrap()
    };
    let source = render(&db, "r");
    assert!(source.contains("[0:2]={7,8,9}"), "{source}");

    // PG -> PG by copy, the table created in the target.
    let target_db = pg.create_database("engine_round_to").unwrap();
    pg.psql(&target_db, types).unwrap();
    let to = pg.url(&target_db);
    let mut options = CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true));
    options.export.policies.special = pgarrow::policy::SpecialValues::Text;
    let stats = blocking::copy(
        &url,
        Source::table("r").unwrap(),
        &to,
        "r",
        &options,
        Hooks::new(),
    )
    .unwrap();
    assert_eq!(stats.load.rows, 3);
    assert_eq!(render(&target_db, "r"), source, "copy");
    // Each column's type and NOT NULL, and the primary key.
    let types_of = |db: &str| {
        pg.psql(
            db,
            "SELECT string_agg(format_type(atttypid, atttypmod) \
                               || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ',' \
                               ORDER BY attnum), \
                    (SELECT pg_get_constraintdef(oid) FROM pg_constraint \
                     WHERE conrelid = 'r'::regclass AND contype = 'p') \
             FROM pg_attribute WHERE attrelid = 'r'::regclass AND attnum > 0",
        )
        .unwrap()
    };
    assert!(
        types_of(&db).contains("integer[] not null") && types_of(&db).contains("PRIMARY KEY (id)"),
        "{}",
        types_of(&db)
    );
    assert_eq!(
        types_of(&target_db),
        types_of(&db),
        "the created columns' types"
    );
    // Into a database without the types: the copy creates them as the source defines them
    // (in dependency order, in the load's transaction), then the table.
    let definitions = |db: &str| {
        pg.psql(
            db,
            "SELECT string_agg(d, E'\\n' ORDER BY d) FROM (
               SELECT format_type(t.oid, NULL) || ' ' || t.typtype::text || ' ' ||
                 coalesce(format_type(nullif(t.typbasetype, 0), t.typtypmod), '') || ' ' ||
                 t.typnotnull::text || ' ' || coalesce(t.typdefault, '') || ' ' ||
                 t.typcollation::regcollation::text || ' ' ||
                 coalesce((SELECT string_agg(conname || ' ' || pg_get_constraintdef(c.oid), ','
                                             ORDER BY conname)
                           FROM pg_constraint c WHERE c.contypid = t.oid), '') || ' ' ||
                 coalesce((SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder)
                           FROM pg_enum WHERE enumtypid = t.oid), '') || ' ' ||
                 coalesce((SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod)
                                             || ' ' || attcollation::regcollation::text, ','
                                             ORDER BY attnum)
                           FROM pg_attribute WHERE attrelid = t.typrelid AND attnum > 0
                             AND t.typtype = 'c'), '') || ' ' ||
                 coalesce((SELECT format_type(rngsubtype, NULL) || ' ' || rngsubdiff::text ||
                                  ' ' || rngsubopc::regclass::text || ' ' ||
                                  format_type(rngmultitypid, NULL)
                           FROM pg_range WHERE rngtypid = t.oid), '') AS d
               FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
               WHERE n.nspname IN ('public', 'kinds') AND t.typtype IN ('e', 'c', 'r', 'd', 'm')
                 AND (t.typrelid = 0 OR t.typrelid IN (SELECT oid FROM pg_class
                                                       WHERE relkind = 'c'))) AS defs",
        )
        .unwrap()
    };
    let empty = pg.create_database("engine_round_empty").unwrap();
    let stats = blocking::copy(
        &url,
        Source::table("r").unwrap(),
        pg.url(&empty),
        "r",
        &options,
        Hooks::new(),
    )
    .unwrap();
    assert_eq!(render(&empty, "r"), source, "copy into an empty database");
    assert_eq!(types_of(&empty), types_of(&db), "its columns' types");
    let defined = definitions(&db);
    assert!(
        defined.contains("kinds.\"Label\" d character varying(8) true 'x'::character varying")
            && defined.contains("not_blank CHECK"),
        "{defined}"
    );
    assert_eq!(definitions(&empty), defined, "the types' definitions");
    assert_eq!(
        stats.created_types,
        [
            "public.mood",
            "public.pair",
            "public.stamps",
            "public.pos",
            "kinds.\"Label\"",
            "kinds.nest",
            "public.floaty"
        ],
        "created once each, each after what it needs"
    );
    // A copy that fails after the types were made leaves neither them nor the table.
    let failed = pg.create_database("engine_round_failed").unwrap();
    let e = blocking::copy(
        &url,
        Source::query("SELECT id, nn, 10 / (3 - id) AS boom FROM r ORDER BY id"),
        pg.url(&failed),
        "r",
        &options,
        Hooks::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("division by zero"), "{e}");
    assert_eq!(
        pg.psql(
            &failed,
            "SELECT to_regclass('r') IS NULL AND to_regtype('mood') IS NULL \
             AND to_regnamespace('kinds') IS NULL"
        )
        .unwrap()
        .trim(),
        "t"
    );
    // A type pgarrow cannot make (an extension's) is refused by name, with what to run.
    pg.psql(
        &db,
        "CREATE EXTENSION hstore; CREATE TABLE h AS SELECT 1 AS id, 'a=>1'::hstore AS kv",
    )
    .unwrap();
    let e = blocking::copy(
        &url,
        Source::table("h").unwrap(),
        pg.url(&failed),
        "h",
        &options,
        Hooks::new(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("public.hstore (of the extension hstore)")
            && e.to_string().contains("CREATE EXTENSION \"hstore\""),
        "{e}"
    );
    assert_eq!(
        pg.psql(&failed, "SELECT to_regclass('h') IS NULL")
            .unwrap()
            .trim(),
        "t"
    );

    // PG -> Parquet -> PG: the exact text where Arrow has no place, loaded by the server's
    // input functions.
    let dir = tempfile::tempdir().unwrap();
    let mut export = ExportOptions::default();
    export.policies.array_shape = pgarrow::policy::ArrayShape::Text;
    export.policies.special = pgarrow::policy::SpecialValues::Text;
    runtime()
        .block_on(export_to_dir(
            &url,
            Source::table("r").unwrap(),
            &export,
            &PartitionOptions::new(1),
            &DirTarget::new(dir.path(), Format::Parquet),
            Hooks::new(),
        ))
        .unwrap();
    let file_db = pg.create_database("engine_round_file").unwrap();
    pg.psql(&file_db, types).unwrap();
    let input = Input::open(&[dir.path().to_owned()], &InputOptions::default()).unwrap();
    blocking::load(
        pg.url(&file_db),
        "r",
        input,
        &LoadOptions::new(LoadMode::Append).with_create(true),
        Hooks::new(),
    )
    .unwrap();
    assert_eq!(render(&file_db, "r"), source, "through Parquet");
    assert_eq!(
        types_of(&file_db),
        types_of(&db),
        "the created columns' types"
    );
}

/// A table's export carries its NOT NULL columns and its primary key in the field metadata
/// (what `--create` declares again); a query's or a view's does not (a view's or an outer
/// join's columns can hold NULLs their base tables forbid).
#[test]
fn a_tables_export_carries_its_not_null_columns_and_primary_key() {
    let Some((pg, url, db)) = setup("engine_constraints") else {
        return;
    };
    pg.psql(
        &db,
        "CREATE TABLE k (b text NOT NULL, a int, c int, PRIMARY KEY (a, b));
         CREATE VIEW kv AS SELECT * FROM k;",
    )
    .unwrap();
    let rt = runtime();
    let mut client = rt.block_on(pgarrow::Client::connect(&url)).unwrap();
    let mut meta = |source: Source| -> Vec<(Option<String>, Option<String>)> {
        let plan = rt.block_on(client.describe(&source)).unwrap();
        plan.schema
            .fields()
            .iter()
            .map(|f| {
                (
                    f.metadata().get("pgarrow.not_null").cloned(),
                    f.metadata().get("pgarrow.primary_key").cloned(),
                )
            })
            .collect()
    };
    let t = |s: &str| Some(s.to_owned());
    assert_eq!(
        meta(Source::table("k").unwrap()),
        [(t("true"), t("2")), (t("true"), t("1")), (None, None)]
    );
    let none = vec![(None, None), (None, None), (None, None)];
    assert_eq!(meta(Source::query("SELECT * FROM k")), none);
    assert_eq!(meta(Source::table("kv").unwrap()), none);
}

/// Domains over types with a modifier (`varchar(5)`, `numeric(8,2)`), a domain whose DEFAULT
/// and CHECK call functions and a sequence, and an array of a domain over an array:
/// `copy --create` into an empty database makes each domain as the source defines it, after
/// the functions and sequence it names (the sequence continuing from the source's value), or
/// with `Domains::Base` gives the columns the base types and says so; `import --create` of the
/// export into a database holding the domains makes the columns of the domains themselves.
#[test]
fn domains_with_modifiers_functions_and_sequences_are_created_or_based_as_asked() {
    let Some((pg, url, db)) = setup("engine_domains") else {
        return;
    };
    pg.psql(
        &db,
        "CREATE SEQUENCE code_seq START 100;
         SELECT nextval('code_seq'), nextval('code_seq');
         CREATE FUNCTION valid_code(text) RETURNS boolean LANGUAGE sql IMMUTABLE
             AS $$ SELECT $1 ~ '^[A-Z]' $$;
         CREATE FUNCTION next_code() RETURNS text LANGUAGE plpgsql
             AS $$ BEGIN RETURN 'C' || nextval('code_seq'); END $$;
         CREATE DOMAIN code AS varchar(5) DEFAULT next_code() CHECK (valid_code(VALUE));
         CREATE DOMAIN amount AS numeric(8,2) CHECK (VALUE >= 0);
         CREATE DOMAIN ticket AS bigint DEFAULT nextval('code_seq');
         CREATE DOMAIN intarr AS int[];
         CREATE TABLE d (id int, c code, a amount, t ticket, ia intarr[]);
         INSERT INTO d VALUES (1, 'AB', 12.5, 7, ARRAY['{1,2}'::intarr, '{3}'::intarr]),
                              (2, NULL, NULL, NULL, NULL);",
    )
    .unwrap();
    let render = |db: &str| pg.psql(db, "SELECT d::text FROM d ORDER BY id").unwrap();
    let types_of = |db: &str| {
        pg.psql(
            db,
            "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) \
             FROM pg_attribute WHERE attrelid = 'd'::regclass AND attnum > 0",
        )
        .unwrap()
        .trim()
        .to_owned()
    };
    let source = render(&db);
    // A copy of d into a new database `name`: every row as the source renders it.
    let copy_into = |name: &str, options: &CopyOptions| {
        let target = pg.create_database(name).unwrap();
        let stats = blocking::copy(
            &url,
            Source::table("d").unwrap(),
            pg.url(&target),
            "d",
            options,
            Hooks::new(),
        )
        .unwrap();
        assert_eq!(render(&target), source, "{name}");
        (target, stats)
    };

    // Define (the default): the domains, their functions and their sequence are created.
    let options = CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true));
    let (target, stats) = copy_into("engine_domains_define", &options);
    assert_eq!(types_of(&target), "integer,code,amount,ticket,intarr[]");
    let created = stats.created_types.join(", ");
    for made in [
        "sequence public.code_seq",
        "function public.valid_code(text)",
        "function public.next_code()",
        "public.code",
        "public.amount",
    ] {
        assert!(created.contains(made), "{made} not in {created}");
    }
    assert!(stats.domains_as_base.is_empty());
    // The DEFAULTs work in the target, the sequence continuing past the source's value, and
    // the CHECKs hold.
    let defaults = pg
        .psql(&target, "INSERT INTO d (id) VALUES (3) RETURNING c, t")
        .unwrap();
    let mut given: Vec<&str> = defaults.trim().split('|').collect();
    given.sort_unstable();
    assert!(
        given == ["102", "C103"] || given == ["103", "C102"],
        "{defaults}"
    );
    let refused = pg.psql(&target, "INSERT INTO d (id, c) VALUES (4, 'lower')");
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("violates check constraint")),
        "{refused:?}"
    );
    assert!(
        pg.psql(&target, "INSERT INTO d (id, a) VALUES (5, -1)")
            .is_err()
    );

    // Base: the base types, said; no domain, function or sequence made.
    let options = options.with_domains(Domains::Base);
    let (target, stats) = copy_into("engine_domains_base", &options);
    assert_eq!(
        types_of(&target),
        "integer,character varying(5),numeric(8,2),bigint,intarr[]"
    );
    assert_eq!(
        stats.domains_as_base,
        [
            "c: code as character varying(5)",
            "a: amount as numeric(8,2)",
            "t: ticket as bigint"
        ]
    );
    let made = pg
        .psql(&target, "SELECT to_regproc('valid_code') IS NULL, to_regclass('code_seq') IS NULL, to_regtype('code') IS NULL")
        .unwrap();
    assert_eq!(made.trim(), "t|t|t");

    // A load of the export with create, into the database that holds the domains: the
    // columns are the domains (a domain's name takes no modifier).
    let reader =
        blocking::export(&url, Source::table("d").unwrap(), &ExportOptions::default()).unwrap();
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    let batches: Vec<_> = reader.collect();
    pg.psql(&db, "ALTER TABLE d RENAME TO d_source").unwrap();
    blocking::load(
        &url,
        "d",
        arrow_array::RecordBatchIterator::new(batches, schema),
        &LoadOptions::new(LoadMode::Append).with_create(true),
        Hooks::new(),
    )
    .unwrap();
    assert_eq!(types_of(&db), "integer,code,amount,ticket,intarr[]");
    assert_eq!(render(&db), source);
}

/// The async copy: on a multi-threaded runtime as a spawned task (its future is `Send` and
/// owns what it needs), with typed progress; on a single-threaded one, stopped from its own
/// progress callback while the load runs: rolled back, the source's query cancelled.
#[test]
fn copy_is_async_reports_its_progress_and_stops_mid_load() {
    let Some((pg, url, db)) = setup("engine_copy_async") else {
        return;
    };
    pg.psql(
        &db,
        "CREATE TABLE s.big AS SELECT g AS id, repeat('x', 40) AS t \
         FROM generate_series(1, 400000) g",
    )
    .unwrap();
    let to = url.clone();
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<pgarrow::LoadProgress>::new()));
    let heard = std::sync::Arc::clone(&events);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (from, into) = (url.clone(), to.clone());
    let task = multi.spawn(async move {
        let options = CopyOptions::new(LoadOptions::new(LoadMode::Append).with_create(true));
        let hooks = Hooks::new().on_progress(move |p: &pgarrow::LoadProgress| {
            heard.lock().unwrap().push(*p);
        });
        pgarrow::copy(
            from,
            Source::table("s.big")?,
            into,
            "public.big",
            &options,
            hooks,
        )
        .await
    });
    let stats = multi.block_on(task).unwrap().unwrap();
    assert_eq!((stats.load.rows, stats.source.rows), (400_000, 400_000));
    assert_eq!(count(pg, &db, "public.big"), 400_000);
    let events = events.lock().unwrap().clone();
    assert!(events.len() > 1, "one event per chunk sent: {events:?}");
    assert!(
        events
            .windows(2)
            .all(|w| w[0].rows <= w[1].rows && w[0].bytes < w[1].bytes),
        "{events:?}"
    );
    let last = events.last().unwrap();
    assert_eq!((last.rows, last.bytes), (400_000, stats.load.bytes));

    // Stopped at the first chunk sent: the load rolls back (the table keeps its rows), the
    // copy says it was cancelled, and the source's query is not left running.
    let stop = Stop::new();
    let stopper = stop.clone();
    let hooks = Hooks::new()
        .with_stop(stop.clone())
        .on_progress(move |_: &pgarrow::LoadProgress| stopper.stop());
    let options = CopyOptions::new(LoadOptions::new(LoadMode::Append));
    let single = runtime();
    let e = single
        .block_on(pgarrow::copy(
            url.as_str(),
            Source::table("s.big").unwrap(),
            to.as_str(),
            "public.big",
            &options,
            hooks,
        ))
        .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert_eq!(count(pg, &db, "public.big"), 400_000);
    let running = pg
        .psql(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%s.big%' \
             AND pid <> pg_backend_pid()",
        )
        .unwrap();
    assert_eq!(running.trim(), "0", "the source's COPY still runs");
}
