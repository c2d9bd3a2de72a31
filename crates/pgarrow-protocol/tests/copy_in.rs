//! COPY FROM STDIN against a real server: data in any pieces, text and binary, the server's
//! errors, CopyFail, and the connection's state afterwards.

use pgarrow_protocol::{COPY_IN_MESSAGE, Config, Connection, ErrorKind};
use pgarrow_testkit::Cluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A new database with `sql` run in it, its cluster, and a connection to it.
async fn connected(prefix: &str, sql: &str) -> Option<(&'static Cluster, String, Connection)> {
    let pg = Cluster::shared()?;
    let db = pg.create_database(prefix).expect("create database");
    pg.psql(&db, sql).expect("setup script");
    let conn = Connection::connect(&Config::parse(&pg.url(&db)).unwrap())
        .await
        .unwrap();
    Some((pg, db, conn))
}

fn scalar(pg: &Cluster, db: &str, sql: &str) -> String {
    pg.psql(db, sql).unwrap().trim().to_owned()
}

#[test]
fn text_rows_in_any_pieces_and_in_big_ones() {
    runtime().block_on(async {
        let Some((pg, db, mut conn)) =
            connected("copyin_text", "CREATE TABLE t (n int, s text);").await
        else {
            return;
        };
        // 200,000 rows, about 3.4 MB: several full CopyData messages.
        let data: String = (1..=200_000).map(|i| format!("{i}\trow {i}\n")).collect();
        assert!(data.len() > 3 * COPY_IN_MESSAGE);
        let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
        assert!(!copy.is_binary());
        let bytes = data.as_bytes();
        // Odd little pieces, then the rest at once.
        let mut at = 0;
        for len in (1..2000).cycle().take(500) {
            copy.write(&bytes[at..at + len % 7 + 1]).await.unwrap();
            at += len % 7 + 1;
        }
        copy.write(&bytes[at..]).await.unwrap();
        assert_eq!(copy.bytes(), bytes.len() as u64);
        assert_eq!(copy.finish().await.unwrap(), 200_000);
        // The connection is ready again, and the rows are what was sent.
        let rows = conn
            .simple_query("SELECT count(*), sum(n), min(s), max(s) FROM t")
            .await
            .unwrap();
        assert_eq!(
            rows[0],
            [
                Some("200000".into()),
                Some("20000100000".into()),
                Some("row 1".into()),
                Some("row 99999".into())
            ]
        );
        assert_eq!(
            scalar(pg, &db, "SELECT count(*) FROM t WHERE s <> 'row ' || n"),
            "0"
        );
    });
}

#[test]
fn a_binary_stream() {
    runtime().block_on(async {
        let Some((pg, db, mut conn)) =
            connected("copyin_binary", "CREATE TABLE t (n int, b bytea);").await
        else {
            return;
        };
        let mut data = b"PGCOPY\n\xff\r\n\0".to_vec();
        data.extend_from_slice(&[0; 8]);
        for i in 0..1000i32 {
            data.extend_from_slice(&2i16.to_be_bytes());
            data.extend_from_slice(&4i32.to_be_bytes());
            data.extend_from_slice(&i.to_be_bytes());
            if i % 10 == 0 {
                data.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                data.extend_from_slice(&3i32.to_be_bytes());
                data.extend_from_slice(&[1, 2, (i % 256) as u8]);
            }
        }
        data.extend_from_slice(&(-1i16).to_be_bytes());
        let mut copy = conn
            .copy_in("COPY t FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        assert!(copy.is_binary());
        copy.write(&data).await.unwrap();
        assert_eq!(copy.finish().await.unwrap(), 1000);
        assert_eq!(
            scalar(
                pg,
                &db,
                "SELECT count(*), count(b), sum(n), sum(get_byte(b, 2)) FROM t"
            ),
            format!(
                "1000|900|499500|{}",
                (0..1000)
                    .filter(|i| i % 10 != 0)
                    .map(|i| i % 256)
                    .sum::<i32>()
            )
        );
    });
}

#[test]
fn server_errors_and_copy_fail_leave_the_table_as_it_was() {
    runtime().block_on(async {
        let Some((pg, db, mut conn)) = connected(
            "copyin_errors",
            "CREATE TABLE t (n int NOT NULL); INSERT INTO t VALUES (7);",
        )
        .await
        else {
            return;
        };
        // A value the server refuses, after many good rows: the error, nothing loaded.
        let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
        let good: String = (0..100_000).map(|i| format!("{i}\n")).collect();
        let mut failed_early = false;
        for piece in [good.as_str(), "12\nnot a number\n", good.as_str()] {
            if let Err(e) = copy.write(piece.as_bytes()).await {
                // Noticed while writing: the same error comes at the end.
                assert_eq!(e.code(), Some("22P02"));
                failed_early = true;
                break;
            }
        }
        let e = copy.finish().await.unwrap_err();
        assert_eq!(e.code(), Some("22P02"), "{e}");
        assert!(e.to_string().contains("not a number"), "{e}");
        eprintln!("error noticed while writing: {failed_early}");
        assert_eq!(
            conn.simple_query("SELECT count(*) FROM t").await.unwrap()[0][0].as_deref(),
            Some("1")
        );
        // CopyFail: the server discards the rows, and says so as the copy's error.
        let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
        copy.write(b"1\n2\n3\n").await.unwrap();
        copy.fail("stopped by the test").await.unwrap();
        assert_eq!(scalar(pg, &db, "SELECT count(*) FROM t"), "1");
        // A statement that is not a COPY FROM STDIN.
        let e = conn.copy_in("SELECT 1").await.unwrap_err();
        assert!(
            e.to_string().contains("did not start a COPY FROM STDIN"),
            "{e}"
        );
        let e = conn.copy_in("COPY nope FROM STDIN").await.unwrap_err();
        assert_eq!(e.code(), Some("42P01"));
        assert_eq!(
            conn.simple_query("SELECT 1").await.unwrap()[0][0].as_deref(),
            Some("1")
        );
    });
}

#[test]
fn a_copy_dropped_midway_loads_nothing_and_ends_the_connection() {
    runtime().block_on(async {
        let Some((pg, db, mut conn)) = connected("copyin_drop", "CREATE TABLE t (n int);").await
        else {
            return;
        };
        let mut copy = conn.copy_in("COPY t FROM STDIN").await.unwrap();
        copy.write(b"1\n2\n").await.unwrap();
        drop(copy);
        let e = conn.simple_query("SELECT 1").await.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Broken(_)), "{e}");
        drop(conn);
        assert_eq!(scalar(pg, &db, "SELECT count(*) FROM t"), "0");
    });
}
