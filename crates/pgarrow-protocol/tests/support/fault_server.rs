//! A scripted fake PostgreSQL server for fault injection, on a plain tokio `TcpListener`.
//!
//! Why not pgwire's server API: pgwire encodes well-formed messages on behalf of a
//! well-behaved server. The faults here are bytes no well-formed server writes: a frame cut
//! mid-field, the connection dropped at byte N of the conversation, an unknown message tag, a
//! length prefix claiming 2 GiB, a server that goes silent with the socket open. So the
//! backend messages are built by hand ([`msg`]) and the script is raw bytes.
//!
//! A [`Script`] is a list of turns: wait for the client's startup packet / Sync / Query /
//! password message, then write these bytes. `cut_at` closes the connection after that many
//! bytes of the whole conversation; `end` says what happens after the last turn. The server
//! also records what it saw ([`Event`]): startup parameters, SSLRequests and CancelRequests
//! (which may arrive on connections of their own).
//!
//! Shared by `pgarrow-protocol/tests`, `pgarrow/tests` and `pgarrow-cli/tests` (included with
//! `#[path]`): it uses only std and tokio.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "accept.rs"]
mod accept;

/// What the server waits for before writing a turn's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The startup packet (the first turn).
    Startup,
    /// A Sync message (end of an extended-protocol batch: Parse/Describe/Sync).
    Sync,
    /// A simple Query message.
    Query,
    /// A password / SASL response message.
    Password,
}

/// What happens after the last turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Close the connection (after the client's next message, or at once with `cut_at`).
    Close,
    /// Keep the socket open and never answer again.
    Hang,
    /// Keep serving: answer Terminate by closing.
    Idle,
}

/// The conversation of one connection.
#[derive(Debug, Clone)]
pub struct Script {
    /// Wait for this, then write that.
    pub turns: Vec<(Wait, Vec<u8>)>,
    /// Close the connection once this many bytes were written (the rest is never sent).
    pub cut_at: Option<usize>,
    /// After the last turn.
    pub end: End,
}

impl Script {
    /// A script with these turns, no cut, closing at the end.
    pub fn new(turns: Vec<(Wait, Vec<u8>)>) -> Script {
        Script {
            turns,
            cut_at: None,
            end: End::Idle,
        }
    }

    /// pgarrow's export of `SELECT g FROM t` (one int4 column `g`): login, the describe and
    /// catalog replies for `g`, then `copy` as the answer to the COPY, and `end` after it.
    pub fn export(copy: Vec<u8>, end: End) -> Script {
        Script {
            end,
            ..Script::new(vec![
                (Wait::Startup, msg::login()),
                (Wait::Sync, msg::described(&[("g", 23)])),
                (Wait::Query, msg::catalog(&["integer"])),
                (Wait::Query, copy),
            ])
        }
    }

    /// As [`Script::export`], for a read-only session (`pgarrow export`): the login is
    /// followed by the answer to `SET default_transaction_read_only = on`.
    pub fn read_only_export(copy: Vec<u8>, end: End) -> Script {
        let mut script = Script::export(copy, end);
        let set = [msg::complete("SET"), msg::ready()].concat();
        script.turns.insert(1, (Wait::Query, set));
        script
    }

    /// Every byte the script would write, in order.
    pub fn total_len(&self) -> usize {
        self.turns.iter().map(|(_, b)| b.len()).sum()
    }
}

/// Something the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A startup packet and its parameters.
    Startup(Vec<(String, String)>),
    /// An SSLRequest (answered `N`, or `S` when the server has a TLS upgrade).
    SslRequest,
    /// A CancelRequest for this process ID and key, and whether it came over TLS.
    Cancel { pid: i32, key: i32, tls: bool },
    /// A frontend message of this tag.
    Message(u8),
}

/// A stream the server can speak over (TCP, or TLS on top of it).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Turns an accepted TCP stream into TLS after the server answered `S` to an SSLRequest.
pub type Upgrade = Arc<
    dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = io::Result<Box<dyn Io>>> + Send>>
        + Send
        + Sync,
>;

/// The process ID and secret key every scripted session announces.
pub const PID: i32 = 4242;
/// See [`PID`].
pub const KEY: i32 = 0x5ec2e7;

/// A running fake server. It stops when dropped.
pub struct FaultServer {
    accept: accept::Acceptor,
    events: Arc<Mutex<Vec<Event>>>,
}

impl FaultServer {
    /// Serves `script` to every connection, on a fresh port of 127.0.0.1.
    pub async fn start(script: Script) -> FaultServer {
        Self::start_with(script, None).await
    }

    /// As [`FaultServer::start`], answering SSLRequests with `S` and `upgrade`.
    pub async fn start_with(script: Script, upgrade: Option<Upgrade>) -> FaultServer {
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        let script = Arc::new(script);
        let accept = accept::Acceptor::start(move |socket| {
            let (script, log, upgrade) = (script.clone(), log.clone(), upgrade.clone());
            async move {
                let _ = serve(socket, &script, &log, upgrade).await;
            }
        })
        .await;
        FaultServer { accept, events }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.accept.addr().port()
    }

    /// A URL for it: no TLS, no password, `extra` appended as parameters.
    pub fn url(&self, extra: &str) -> String {
        let sep = if extra.is_empty() { "" } else { "&" };
        format!(
            "postgresql://fault@127.0.0.1:{}/fault?sslmode=disable{sep}{extra}",
            self.port()
        )
    }

    /// What the server saw so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("events").clone()
    }

    /// The CancelRequests seen so far.
    pub fn cancels(&self) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| matches!(e, Event::Cancel { .. }))
            .collect()
    }
}

async fn read_packet<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let len = i32::from_be_bytes(len);
    if !(8..=10_000).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad packet length",
        ));
    }
    let mut body = vec![0u8; len as usize - 4];
    s.read_exact(&mut body).await?;
    Ok(body)
}

async fn serve(
    mut tcp: TcpStream,
    script: &Script,
    log: &Mutex<Vec<Event>>,
    upgrade: Option<Upgrade>,
) -> io::Result<()> {
    let record = |e: Event| log.lock().expect("events").push(e);
    let mut packet = read_packet(&mut tcp).await?;
    let code = |p: &[u8]| i32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    let mut stream: Box<dyn Io> = if code(&packet) == 80877103 {
        record(Event::SslRequest);
        match upgrade {
            Some(up) => {
                tcp.write_all(b"S").await?;
                let mut s = up(tcp).await?;
                packet = read_packet(&mut s).await?;
                s
            }
            None => {
                tcp.write_all(b"N").await?;
                packet = read_packet(&mut tcp).await?;
                Box::new(tcp)
            }
        }
    } else {
        Box::new(tcp)
    };
    let tls = log.lock().expect("events").last() == Some(&Event::SslRequest);
    if code(&packet) == 80877102 && packet.len() == 12 {
        record(Event::Cancel {
            pid: code(&packet[4..]),
            key: code(&packet[8..]),
            tls,
        });
        return Ok(());
    }
    let mut params = Vec::new();
    let mut fields = packet[4..].split(|&b| b == 0);
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        if k.is_empty() {
            break;
        }
        params.push((
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ));
    }
    record(Event::Startup(params));

    let mut written = 0usize;
    for (i, (wait, bytes)) in script.turns.iter().enumerate() {
        if i > 0 || *wait != Wait::Startup {
            let want = match wait {
                Wait::Startup => None,
                Wait::Sync => Some(b'S'),
                Wait::Query => Some(b'Q'),
                Wait::Password => Some(b'p'),
            };
            if let Some(want) = want {
                loop {
                    let tag = read_message(&mut stream).await?;
                    record(Event::Message(tag));
                    if tag == b'X' {
                        return Ok(());
                    }
                    if tag == want {
                        break;
                    }
                }
            }
        }
        let take = match script.cut_at {
            Some(cut) => bytes.len().min(cut.saturating_sub(written)),
            None => bytes.len(),
        };
        stream.write_all(&bytes[..take]).await?;
        stream.flush().await?;
        written += take;
        if script.cut_at.is_some_and(|cut| written >= cut) {
            return hang_up(stream).await;
        }
    }
    match script.end {
        End::Close => hang_up(stream).await,
        End::Hang | End::Idle => loop {
            let tag = read_message(&mut stream).await?;
            record(Event::Message(tag));
            if tag == b'X' && script.end == End::Idle {
                return Ok(());
            }
        },
    }
}

/// Reads one frontend message and returns its tag.
async fn read_message(s: &mut Box<dyn Io>) -> io::Result<u8> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if !(4..=(64 << 20)).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad message length",
        ));
    }
    let mut body = vec![0u8; len as usize - 4];
    s.read_exact(&mut body).await?;
    Ok(head[0])
}

/// Closes our side, then reads until the client closes too (so that our close never turns
/// into a reset that could overtake data the client has not read yet).
async fn hang_up(mut s: Box<dyn Io>) -> io::Result<()> {
    let _ = s.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(())
}

/// Where [`msg::copy_failing`] puts its error in a COPY of int4 rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAt {
    /// Instead of CopyOutResponse.
    Start,
    /// After CopyOutResponse, before the COPY header.
    Header,
    /// After rows 1 and 2.
    BetweenRows,
    /// After row 1 and the trailer.
    Trailer,
    /// After row 1, the trailer and CopyDone.
    CopyDone,
}

/// Backend messages, built by hand.
pub mod msg {
    use super::{ErrorAt, KEY, PID};

    /// A message: tag, length (counting itself), body.
    pub fn raw(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// AuthenticationOk.
    pub fn auth_ok() -> Vec<u8> {
        raw(b'R', &0i32.to_be_bytes())
    }

    /// AuthenticationCleartextPassword.
    pub fn auth_cleartext() -> Vec<u8> {
        raw(b'R', &3i32.to_be_bytes())
    }

    /// ParameterStatus.
    pub fn param(name: &str, value: &str) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, name);
        cstr(&mut b, value);
        raw(b'S', &b)
    }

    /// BackendKeyData with [`PID`] and [`KEY`].
    pub fn backend_key() -> Vec<u8> {
        let mut b = PID.to_be_bytes().to_vec();
        b.extend_from_slice(&KEY.to_be_bytes());
        raw(b'K', &b)
    }

    /// ReadyForQuery (idle).
    pub fn ready() -> Vec<u8> {
        raw(b'Z', b"I")
    }

    /// Everything after a trust login: AuthenticationOk, the parameters pgarrow checks,
    /// BackendKeyData, ReadyForQuery.
    pub fn login() -> Vec<u8> {
        [
            auth_ok(),
            param("server_version", "15.99"),
            param("client_encoding", "UTF8"),
            param("server_encoding", "UTF8"),
            backend_key(),
            ready(),
        ]
        .concat()
    }

    /// ErrorResponse (or NoticeResponse with `tag` `N`).
    pub fn error(severity: &str, code: &str, message: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for (t, v) in [
            (b'S', severity),
            (b'V', severity),
            (b'C', code),
            (b'M', message),
        ] {
            b.push(t);
            cstr(&mut b, v);
        }
        b.push(0);
        raw(b'E', &b)
    }

    /// RowDescription of int4 / text-like columns: `(name, type oid)`.
    pub fn row_description(cols: &[(&str, u32)]) -> Vec<u8> {
        let mut b = (cols.len() as i16).to_be_bytes().to_vec();
        for (name, oid) in cols {
            cstr(&mut b, name);
            b.extend_from_slice(&0u32.to_be_bytes()); // table
            b.extend_from_slice(&0i16.to_be_bytes()); // column
            b.extend_from_slice(&oid.to_be_bytes());
            b.extend_from_slice(&(-1i16).to_be_bytes()); // size
            b.extend_from_slice(&(-1i32).to_be_bytes()); // typmod
            b.extend_from_slice(&0i16.to_be_bytes()); // format
        }
        raw(b'T', &b)
    }

    /// DataRow of text values.
    pub fn data_row(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            match v {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v.as_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        raw(b'D', &b)
    }

    /// CommandComplete.
    pub fn complete(tag: &str) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, tag);
        raw(b'C', &b)
    }

    /// The replies to Parse/Describe(statement)/Sync for a query without parameters.
    pub fn described(cols: &[(&str, u32)]) -> Vec<u8> {
        [
            raw(b'1', &[]),
            raw(b't', &0i16.to_be_bytes()),
            row_description(cols),
            ready(),
        ]
        .concat()
    }

    /// The replies to the library's catalog query (`pgarrow::Client::describe`): one `n` row
    /// (column number, type name) per column, in its 12-column shape. Built-in types need
    /// nothing more.
    pub fn catalog(names: &[&str]) -> Vec<u8> {
        let cols: Vec<(String, u32)> = (1..=12).map(|i| (format!("c{i}"), 25)).collect();
        let cols: Vec<(&str, u32)> = cols.iter().map(|(n, o)| (n.as_str(), *o)).collect();
        let mut out = row_description(&cols);
        for (i, n) in names.iter().enumerate() {
            let number = (i + 1).to_string();
            let mut row = vec![Some("n"), Some(number.as_str()), Some(*n)];
            row.resize(12, None);
            out.extend(data_row(&row));
        }
        out.extend(complete(&format!("SELECT {}", names.len())));
        out.extend(ready());
        out
    }

    /// CopyOutResponse, binary, `ncols` columns.
    pub fn copy_out_response(ncols: i16) -> Vec<u8> {
        let mut b = vec![1u8];
        b.extend_from_slice(&ncols.to_be_bytes());
        for _ in 0..ncols {
            b.extend_from_slice(&1i16.to_be_bytes());
        }
        raw(b'H', &b)
    }

    /// CopyData.
    pub fn copy_data(data: &[u8]) -> Vec<u8> {
        raw(b'd', data)
    }

    /// CopyDone.
    pub fn copy_done() -> Vec<u8> {
        raw(b'c', &[])
    }

    /// The binary COPY header (signature, flags 0, no extension).
    pub fn copy_header() -> Vec<u8> {
        let mut h = b"PGCOPY\n\xff\r\n\0".to_vec();
        h.extend_from_slice(&0i32.to_be_bytes());
        h.extend_from_slice(&0i32.to_be_bytes());
        h
    }

    /// One binary COPY tuple of a single int4.
    pub fn int4_tuple(v: i32) -> Vec<u8> {
        let mut t = 1i16.to_be_bytes().to_vec();
        t.extend_from_slice(&4i32.to_be_bytes());
        t.extend_from_slice(&v.to_be_bytes());
        t
    }

    /// The binary COPY trailer.
    pub fn copy_trailer() -> Vec<u8> {
        (-1i16).to_be_bytes().to_vec()
    }

    /// The start of a COPY of int4 rows: CopyOutResponse, then one CopyData with the header and
    /// row 1; then `rest`.
    pub fn copy_row_1_then(rest: &[Vec<u8>]) -> Vec<u8> {
        let start = [
            copy_out_response(1),
            copy_data(&[copy_header(), int4_tuple(1)].concat()),
        ];
        [&start[..], rest].concat().concat()
    }

    /// The answer to a COPY of int4 rows that fails `at` with ERROR 22012 (division by zero),
    /// the statement then ended by ReadyForQuery.
    pub fn copy_failing(at: ErrorAt) -> Vec<u8> {
        let start = match at {
            ErrorAt::Start => Vec::new(),
            ErrorAt::Header => copy_out_response(1),
            ErrorAt::BetweenRows => copy_row_1_then(&[copy_data(&int4_tuple(2))]),
            ErrorAt::Trailer => copy_row_1_then(&[copy_data(&copy_trailer())]),
            ErrorAt::CopyDone => copy_row_1_then(&[copy_data(&copy_trailer()), copy_done()]),
        };
        [start, error("ERROR", "22012", "division by zero"), ready()].concat()
    }

    /// A whole successful COPY of `rows` int4 values 1..=rows, one CopyData per row (the
    /// header rides in the first, as PostgreSQL sends it), up to ReadyForQuery.
    pub fn int4_copy(rows: i32) -> Vec<u8> {
        let mut out = copy_out_response(1);
        for v in 1..=rows {
            let mut frame = if v == 1 { copy_header() } else { Vec::new() };
            frame.extend(int4_tuple(v));
            out.extend(copy_data(&frame));
        }
        let mut last = if rows == 0 { copy_header() } else { Vec::new() };
        last.extend(copy_trailer());
        out.extend(copy_data(&last));
        out.extend(copy_done());
        out.extend(complete(&format!("COPY {rows}")));
        out.extend(ready());
        out
    }
}
