//! Writing to Google Cloud Storage through its JSON API: an object is written by a resumable
//! upload (its chunks sent in order, the object created only by the last one; cancelled, no
//! object), small ones (a manifest) by one media upload.
//!
//! BE ADVISED: the `object_store` crate writes through GCS's XML API, which Google serves
//! but the GCS emulators do not (fake-gcs-server has no XML uploads), so its writes could not
//! be tested here; the JSON API is GCS's own upload protocol and the emulators implement it.
//! Reads, lists and deletes still go through `object_store`, with the same credentials.
//!
//! Each request is tried again after a transient failure (a 5xx, 429 or 408 answer, a
//! connection that could not be made, or one cut before its answer), under the store's
//! [`RetryConfig`] as `object_store` applies it to its own requests: its jittered exponential
//! backoff, `max_retries` and `retry_timeout`. A request cut before its answer may have taken
//! effect, and each of ours is made harmless to send again: a media upload overwrites;
//! starting a resumable upload makes nothing visible; a chunk is sent again from what the
//! store says it holds (a status query); a create (`ifGenerationMatch=0`) that finds the object
//! there after a retry reads it back, and the object is ours when its bytes are.

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::RetryConfig;
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorageBuilder, GoogleConfigKey};
use reqwest::StatusCode;
use url::Url;

/// Chunks of a resumable upload but the last are multiples of this.
pub(crate) const CHUNK_MULTIPLE: usize = 256 << 10;

const DEFAULT_BASE_URL: &str = "https://storage.googleapis.com";

/// One bucket's JSON-API uploads.
pub(crate) struct Gcs {
    http: reqwest::Client,
    base: String,
    bucket: String,
    credentials: GcpCredentialProvider,
    retry: RetryConfig,
}

/// A resumable upload under way: where its chunks go.
#[derive(Clone)]
pub(crate) struct Session {
    gcs: Arc<Gcs>,
    /// A capability for the upload: never shown.
    uri: String,
}

impl std::fmt::Debug for Gcs {
    /// The bucket only: the credentials hold a bearer token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gcs")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// A request's failure, without its URL (a session's address is a capability).
fn failed(e: reqwest::Error) -> object_store::Error {
    generic(e.without_url())
}

fn generic(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> object_store::Error {
    object_store::Error::Generic {
        store: "GCS",
        source: e.into(),
    }
}

/// A refused request as `object_store`'s error of the same meaning.
fn refused(what: &str, path: &str, status: StatusCode, body: &str) -> object_store::Error {
    let message = format!("{what} {path}: {status}: {}", body.trim());
    let source = message.clone().into();
    match status {
        StatusCode::NOT_FOUND => object_store::Error::NotFound {
            path: path.to_owned(),
            source,
        },
        StatusCode::UNAUTHORIZED => object_store::Error::Unauthenticated {
            path: path.to_owned(),
            source,
        },
        StatusCode::FORBIDDEN => object_store::Error::PermissionDenied {
            path: path.to_owned(),
            source,
        },
        _ => generic(message),
    }
}

impl Gcs {
    /// The base URL `builder` will use: the option, else the service account's
    /// `gcs_base_url`, else Google's.
    pub(crate) fn base_url(builder: &GoogleCloudStorageBuilder) -> String {
        let from_key = |text: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("gcs_base_url")?.as_str().map(str::to_owned))
        };
        builder
            .get_config_value(&GoogleConfigKey::BaseUrl)
            .or_else(|| {
                builder
                    .get_config_value(&GoogleConfigKey::ServiceAccountKey)
                    .and_then(|k| from_key(&k))
            })
            .or_else(|| {
                builder
                    .get_config_value(&GoogleConfigKey::ServiceAccount)
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .and_then(|k| from_key(&k))
            })
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
    }

    /// The uploads of `bucket` at `base`, with the store's credentials and retries.
    pub(crate) fn new(
        base: String,
        bucket: String,
        credentials: GcpCredentialProvider,
        retry: RetryConfig,
    ) -> object_store::Result<Gcs> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(failed)?;
        Ok(Gcs {
            http,
            base: base.trim_end_matches('/').to_owned(),
            bucket,
            credentials,
            retry,
        })
    }

    async fn authorized(
        &self,
        request: reqwest::RequestBuilder,
    ) -> object_store::Result<reqwest::RequestBuilder> {
        let credential = self.credentials.get_credential().await?;
        Ok(match credential.bearer.is_empty() {
            true => request,
            false => request.bearer_auth(&credential.bearer),
        })
    }

    /// Sends `request` with the credentials, again after each transient failure (see the
    /// module's doc: the request must be harmless to send again); a reply `ok` does not take
    /// is refused as `what` of `name`.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        ok: impl Fn(StatusCode) -> bool,
        what: &str,
        name: &str,
    ) -> object_store::Result<Sent> {
        let mut backoff = Backoff::new(&self.retry);
        loop {
            let attempt = request
                .try_clone()
                .ok_or_else(|| generic("a request whose body cannot be sent again"))?;
            let failure = match self.authorized(attempt).await?.send().await {
                Ok(response) if ok(response.status()) => {
                    return Ok(Sent {
                        response,
                        retried: backoff.retries,
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    (Failure::Status(status), refused(what, name, status, &body))
                }
                Err(e) => (Failure::of(&e), failed(e)),
            };
            backoff.wait(failure, what, name).await?;
        }
    }

    fn upload_url(&self, kind: &str, name: &str) -> object_store::Result<Url> {
        Url::parse_with_params(
            &format!("{}/upload/storage/v1/b/{}/o", self.base, self.bucket),
            &[("uploadType", kind), ("name", name)],
        )
        .map_err(generic)
    }

    /// Starts a resumable upload of `name`: a request, so a missing bucket or a refused write
    /// fails here.
    pub(crate) async fn start(self: &Arc<Self>, name: &str) -> object_store::Result<Session> {
        let url = self.upload_url("resumable", name)?;
        let request = self
            .http
            .post(url)
            .header("X-Upload-Content-Type", "application/octet-stream")
            .header("Content-Type", "application/json; charset=UTF-8")
            .body("{}");
        // A session no chunk was sent to makes no object: starting again is harmless.
        let sent = self
            .exchange(
                request,
                |s| s.is_success(),
                "cannot start an upload of",
                name,
            )
            .await?;
        let uri = sent
            .response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| generic("the upload was started with no session address"))?
            .to_owned();
        Ok(Session {
            gcs: self.clone(),
            uri,
        })
    }

    /// Writes `name` whole in one request.
    /// Writes `name` only if there is no such object (`ifGenerationMatch=0`), in one
    /// multipart upload (its metadata and its bytes: the emulators honour the precondition on
    /// this kind of upload, as GCS does on every kind): [`object_store::Error::AlreadyExists`]
    /// when there is one.
    pub(crate) async fn create(&self, name: &str, bytes: Vec<u8>) -> object_store::Result<()> {
        let mut url = self.upload_url("multipart", name)?;
        url.query_pairs_mut().append_pair("ifGenerationMatch", "0");
        let boundary = "pgarrow-create-boundary-7d1c9f";
        let metadata = serde_json::json!({ "name": name }).to_string();
        let mut body = Vec::with_capacity(bytes.len() + metadata.len() + 200);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n\
                 --{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = self
            .http
            .post(url)
            .header(
                "Content-Type",
                format!("multipart/related; boundary={boundary}"),
            )
            .body(body);
        // Sent again even when cut before its answer: a retry that finds the object reads it
        // back.
        let sent = self
            .exchange(
                request,
                |s| s.is_success() || s == StatusCode::PRECONDITION_FAILED,
                "cannot create",
                name,
            )
            .await?;
        if sent.response.status() != StatusCode::PRECONDITION_FAILED {
            return Ok(());
        }
        // After a retry, the object may be the one an earlier try made.
        if sent.retried > 0 && self.read(name).await?.as_deref() == Some(&bytes[..]) {
            return Ok(());
        }
        Err(object_store::Error::AlreadyExists {
            path: name.to_owned(),
            source: format!("{name}: another writer created it first").into(),
        })
    }

    /// The bytes of object `name`, `None` when there is none (a media download).
    async fn read(&self, name: &str) -> object_store::Result<Option<Vec<u8>>> {
        let mut url = Url::parse(&self.base).map_err(generic)?;
        url.path_segments_mut()
            .map_err(|()| generic("a base URL that cannot hold a path"))?
            .pop_if_empty()
            .extend(["storage", "v1", "b", &self.bucket, "o", name]);
        url.query_pairs_mut().append_pair("alt", "media");
        let request = self.http.get(url);
        let sent = self
            .exchange(
                request,
                |s| s.is_success() || s == StatusCode::NOT_FOUND,
                "cannot read",
                name,
            )
            .await?;
        if sent.response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let bytes = sent.response.bytes().await.map_err(failed)?;
        Ok(Some(bytes.to_vec()))
    }

    pub(crate) async fn put(&self, name: &str, bytes: Vec<u8>) -> object_store::Result<()> {
        let url = self.upload_url("media", name)?;
        let request = self
            .http
            .post(url)
            .header("Content-Type", "application/octet-stream")
            .body(bytes);
        // An overwrite: sending it again is harmless.
        self.exchange(request, |s| s.is_success(), "cannot write", name)
            .await
            .map(drop)
    }
}

impl Session {
    /// Sends `bytes` at `offset`; `total` on the last chunk (which makes the object). After a
    /// transient failure the store is asked what it holds, and the rest is sent again.
    pub(crate) async fn send(
        &self,
        bytes: Vec<u8>,
        offset: u64,
        total: Option<u64>,
    ) -> object_store::Result<()> {
        let bytes = bytes::Bytes::from(bytes);
        let gcs = &self.gcs;
        let mut backoff = Backoff::new(&gcs.retry);
        // Bytes of the chunk the store holds.
        let mut held = 0usize;
        loop {
            if held == bytes.len() && total.is_none() {
                // The store holds the whole chunk already.
                return Ok(());
            }
            let rest = bytes.slice(held..);
            let at = offset + held as u64;
            let len = rest.len() as u64;
            let range = match (len, total) {
                (0, Some(total)) => format!("bytes */{total}"),
                (_, Some(total)) => format!("bytes {at}-{}/{total}", at + len - 1),
                (_, None) => format!("bytes {at}-{}/*", at + len - 1),
            };
            let request = gcs
                .http
                .put(&self.uri)
                .header("Content-Range", range)
                .body(rest);
            let failure = match gcs.authorized(request).await?.send().await {
                // 308: the chunk was taken, more are expected; the last one makes the object.
                Ok(response) if chunk_taken(response.status(), total) => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    let error = refused("cannot upload to", &gcs.bucket, status, &body);
                    (Failure::Status(status), error)
                }
                Err(e) => (Failure::of(&e), failed(e)),
            };
            // The status query below makes sending again harmless.
            backoff
                .wait(failure, "cannot upload to", &gcs.bucket)
                .await?;
            match self.held(total, &mut backoff).await? {
                Held::Done => return Ok(()),
                Held::Upto(end) => {
                    held = end
                        .checked_sub(offset)
                        .and_then(|h| usize::try_from(h).ok())
                        .filter(|&h| h <= bytes.len())
                        .ok_or_else(|| {
                            generic(format!(
                                "the upload to {} holds {end} bytes, and its chunk is at \
                                 {offset}..{}",
                                gcs.bucket,
                                offset + bytes.len() as u64
                            ))
                        })?;
                }
            }
        }
    }

    /// What the store holds of the upload (a status query: an empty `PUT` with
    /// `Content-Range: bytes */<total or *>`), tried again as a chunk is.
    async fn held(&self, total: Option<u64>, backoff: &mut Backoff) -> object_store::Result<Held> {
        let gcs = &self.gcs;
        let range = match total {
            Some(total) => format!("bytes */{total}"),
            None => "bytes */*".to_owned(),
        };
        loop {
            let request = gcs
                .http
                .put(&self.uri)
                .header("Content-Range", range.as_str())
                .body(Vec::new());
            let failure = match gcs.authorized(request).await?.send().await {
                Ok(response) if response.status().is_success() => return Ok(Held::Done),
                Ok(response) if response.status().as_u16() == 308 => {
                    let header = response.headers().get(reqwest::header::RANGE);
                    return match header.map(|v| v.to_str().map(held_upto)) {
                        None => Ok(Held::Upto(0)),
                        Some(Ok(Some(end))) => Ok(Held::Upto(end)),
                        Some(_) => Err(generic(format!(
                            "the upload to {} answered its status with the range {header:?}",
                            gcs.bucket
                        ))),
                    };
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    let error = refused("cannot upload to", &gcs.bucket, status, &body);
                    (Failure::Status(status), error)
                }
                Err(e) => (Failure::of(&e), failed(e)),
            };
            backoff
                .wait(failure, "cannot upload to", &gcs.bucket)
                .await?;
        }
    }

    /// Cancels the upload: no object is made of it.
    pub(crate) async fn cancel(&self) -> object_store::Result<()> {
        let request = self.gcs.http.delete(&self.uri);
        // GCS answers 499 to a cancelled upload; whatever it answers, the object is not made.
        self.gcs
            .exchange(
                request,
                |_| true,
                "cannot cancel an upload to",
                &self.gcs.bucket,
            )
            .await
            .map(drop)
    }
}

/// Whether a chunk's answer `status` says it was taken: 308 before the last chunk, a success
/// for the last (`total` known).
fn chunk_taken(status: StatusCode, total: Option<u64>) -> bool {
    match total {
        None => status.as_u16() == 308,
        Some(_) => status.is_success(),
    }
}

/// The bytes a resumable upload holds, from its status's `Range: bytes=0-<last>` header.
fn held_upto(range: &str) -> Option<u64> {
    let last = range.strip_prefix("bytes=0-")?.parse::<u64>().ok()?;
    last.checked_add(1)
}

/// What a resumable upload holds.
enum Held {
    /// Its object is made.
    Done,
    /// Its bytes up to here.
    Upto(u64),
}

/// A request's answer, and how many times it was tried again.
struct Sent {
    response: reqwest::Response,
    retried: usize,
}

/// How a try failed, as far as trying again goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The store answered.
    Status(StatusCode),
    /// No answer: the connection could not be made (the request was not sent), or was cut or
    /// timed out before the answer (the request may have taken effect).
    NoAnswer,
    /// Anything else (a body that could not be read, a redirect loop...).
    Other,
}

impl Failure {
    fn of(e: &reqwest::Error) -> Failure {
        if e.is_connect() || e.is_timeout() || e.is_request() {
            return Failure::NoAnswer;
        }
        // A reset connection, wherever reqwest put it.
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::*;
                if matches!(
                    io.kind(),
                    ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut
                ) {
                    return Failure::NoAnswer;
                }
            }
            source = s.source();
        }
        Failure::Other
    }

    /// Whether a try that failed so may be made again (of a request harmless to send again).
    fn transient(self) -> bool {
        match self {
            Failure::Status(s) => {
                s.is_server_error()
                    || s == StatusCode::TOO_MANY_REQUESTS
                    || s == StatusCode::REQUEST_TIMEOUT
            }
            Failure::NoAnswer => true,
            Failure::Other => false,
        }
    }
}

/// The tries of one request: `object_store`'s backoff (each wait drawn between the first
/// wait and `base` times the one before, at most `max_backoff`), under `max_retries` and
/// `retry_timeout`.
#[derive(Debug)]
struct Backoff {
    first: f64,
    next: f64,
    longest: f64,
    base: f64,
    max_retries: usize,
    within: Duration,
    started: Instant,
    retries: usize,
}

impl Backoff {
    fn new(config: &RetryConfig) -> Backoff {
        let first = config.backoff.init_backoff.as_secs_f64();
        Backoff {
            first,
            next: first,
            longest: config.backoff.max_backoff.as_secs_f64(),
            base: config.backoff.base,
            max_retries: config.max_retries,
            within: config.retry_timeout,
            started: Instant::now(),
            retries: 0,
        }
    }

    /// The wait before the next try, `fraction` (in `[0, 1)`) the jitter; `None` when the
    /// tries or the time are spent. Pure but for the clock, for the tests.
    fn next_wait(&mut self, fraction: f64) -> Option<Duration> {
        if self.retries >= self.max_retries || self.started.elapsed() > self.within {
            return None;
        }
        self.retries += 1;
        let high = (self.next * self.base).max(self.first);
        let drawn = self.first + fraction * (high - self.first);
        let wait = std::mem::replace(&mut self.next, drawn.min(self.longest));
        Some(Duration::from_secs_f64(wait))
    }

    /// After a try failed (`failure`, `error`): waits before the next one, or returns the
    /// error when the failure is not transient or the tries are spent.
    async fn wait(
        &mut self,
        (failure, error): (Failure, object_store::Error),
        what: &str,
        name: &str,
    ) -> object_store::Result<()> {
        if !failure.transient() {
            return Err(error);
        }
        let Some(wait) = self.next_wait(fastrand::f64()) else {
            return Err(error);
        };
        log::debug!(
            "GCS: {what} {name}: {error}; try {} in {wait:?}",
            self.retries + 1
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::Mutex;

    use object_store::gcp::GcpCredential;

    use super::*;

    #[test]
    fn transient_failures_are_tried_again_and_the_others_not() {
        let status = |n: u16| Failure::Status(StatusCode::from_u16(n).unwrap());
        for n in [500, 502, 503, 504, 429, 408] {
            assert!(status(n).transient(), "{n}");
        }
        for n in [400, 401, 403, 404, 409, 412] {
            assert!(!status(n).transient(), "{n}");
        }
        // A request that may have taken effect: each of ours is harmless to send again.
        assert!(Failure::NoAnswer.transient());
        assert!(!Failure::Other.transient());
    }

    fn config(max_retries: usize, within: Duration) -> RetryConfig {
        let mut c = RetryConfig {
            max_retries,
            retry_timeout: within,
            ..RetryConfig::default()
        };
        c.backoff.init_backoff = Duration::from_millis(100);
        c.backoff.max_backoff = Duration::from_secs(1);
        c.backoff.base = 2.0;
        c
    }

    #[test]
    fn the_backoff_grows_jittered_and_ends_with_the_tries_or_the_time() {
        let secs = |b: &mut Backoff, f: f64| b.next_wait(f).map(|d| d.as_secs_f64());
        let close = |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-9, "{a:?} {b}");
        // The top of each draw: 0.1, then 0.2, 0.4, 0.8, then held at 1 s.
        let mut b = Backoff::new(&config(6, Duration::from_secs(60)));
        for want in [0.1, 0.2, 0.4, 0.8, 1.0, 1.0] {
            close(secs(&mut b, 1.0), want);
        }
        assert_eq!(b.next_wait(0.5), None, "6 retries, then none");
        // The bottom of each draw is the first wait; a draw between sets the next bound.
        let mut b = Backoff::new(&config(3, Duration::from_secs(60)));
        close(secs(&mut b, 0.0), 0.1);
        close(secs(&mut b, 0.5), 0.1);
        close(secs(&mut b, 0.0), 0.15);
        // Past the time limit no try is left, whatever the count.
        let mut b = Backoff::new(&config(10, Duration::ZERO));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(b.next_wait(0.5), None);
    }

    #[test]
    fn a_status_range_says_what_the_store_holds() {
        assert_eq!(held_upto("bytes=0-262143"), Some(262_144));
        assert_eq!(held_upto("bytes=5-9"), None);
        assert_eq!(held_upto("bytes=0-x"), None);
        assert!(chunk_taken(StatusCode::PERMANENT_REDIRECT, None));
        assert!(!chunk_taken(StatusCode::OK, None));
        assert!(chunk_taken(StatusCode::OK, Some(1)));
    }

    /// A request the fake store saw: method, path and query, `Content-Range`, body length.
    type Seen = (String, String, Option<String>, usize);

    /// A fake JSON API on 127.0.0.1: each connection gets the next answer (status, headers,
    /// body) and is closed; every request is recorded.
    fn serve(answers: Vec<(u16, &'static str, Vec<u8>)>) -> (Arc<Gcs>, Arc<Mutex<Vec<Seen>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (status, headers, body) in answers {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut words = line.split_whitespace();
                let (method, target) = (words.next().unwrap(), words.next().unwrap());
                let (mut length, mut range) = (0, None);
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(": ").unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.parse().unwrap(),
                        "content-range" => range = Some(value.to_owned()),
                        _ => {}
                    }
                }
                let mut request_body = vec![0; length];
                reader.read_exact(&mut request_body).unwrap();
                log.lock()
                    .unwrap()
                    .push((method.to_owned(), target.to_owned(), range, length));
                let mut stream = reader.into_inner();
                let head = format!(
                    "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            }
        });
        super::super::object::install_crypto();
        let credentials: GcpCredentialProvider =
            Arc::new(object_store::StaticCredentialProvider::new(GcpCredential {
                bearer: String::new(),
            }));
        let mut retry = config(3, Duration::from_secs(30));
        retry.backoff.init_backoff = Duration::from_millis(1);
        retry.backoff.max_backoff = Duration::from_millis(5);
        let gcs = Gcs::new(base, "b".into(), credentials, retry).unwrap();
        (Arc::new(gcs), seen)
    }

    fn run<T: Send + 'static>(
        fut: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> object_store::Result<T> {
        super::super::runtime::run(fut)
    }

    #[test]
    fn a_write_is_tried_again_after_transient_answers_only() {
        let (gcs, seen) = serve(vec![
            (503, "", vec![]),
            (429, "", vec![]),
            (200, "", vec![]),
        ]);
        run(async move { gcs.put("k", b"abc".to_vec()).await }).unwrap();
        assert_eq!(seen.lock().unwrap().len(), 3);

        let (gcs, seen) = serve(vec![(400, "", b"bad".to_vec()), (200, "", vec![])]);
        let e = run(async move { gcs.put("k", b"abc".to_vec()).await }).unwrap_err();
        assert!(e.to_string().contains("400"), "{e}");
        assert_eq!(seen.lock().unwrap().len(), 1, "a refusal is final");

        // Three retries, then the last answer's error.
        let (gcs, seen) = serve(vec![(503, "", vec![]); 5]);
        let e = run(async move { gcs.put("k", b"abc".to_vec()).await }).unwrap_err();
        assert!(e.to_string().contains("503"), "{e}");
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    #[test]
    fn a_create_that_finds_its_own_object_after_a_retry_succeeded() {
        // The first try made the object but its answer was lost (here: a 503); the retry finds
        // it (412) and reads it back: ours.
        let (gcs, seen) = serve(vec![
            (503, "", vec![]),
            (412, "", vec![]),
            (200, "", b"mine".to_vec()),
        ]);
        run(async move { gcs.create("a/b c", b"mine".to_vec()).await }).unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(
            (seen[2].0.as_str(), seen[2].1.as_str()),
            ("GET", "/storage/v1/b/b/o/a%2Fb%20c?alt=media")
        );
        drop(seen);
        // Someone else's bytes: the race was lost.
        let (gcs, _) = serve(vec![
            (503, "", vec![]),
            (412, "", vec![]),
            (200, "", b"theirs".to_vec()),
        ]);
        let e = run(async move { gcs.create("k", b"mine".to_vec()).await }).unwrap_err();
        assert!(
            matches!(e, object_store::Error::AlreadyExists { .. }),
            "{e}"
        );
        // Found at the first try: lost, without a read.
        let (gcs, seen) = serve(vec![(412, "", vec![])]);
        let e = run(async move { gcs.create("k", b"mine".to_vec()).await }).unwrap_err();
        assert!(
            matches!(e, object_store::Error::AlreadyExists { .. }),
            "{e}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_chunk_is_sent_again_from_what_the_store_holds() {
        let (gcs, seen) = serve(vec![
            (503, "", vec![]),
            // The status query: the first 256 KiB were kept.
            (308, "Range: bytes=0-262143\r\n", vec![]),
            (308, "", vec![]),
        ]);
        let uri = format!("{}/upload/session", gcs.base);
        let session = Session { gcs, uri };
        run(async move { session.send(vec![7; 2 * CHUNK_MULTIPLE], 0, None).await }).unwrap();
        let seen = seen.lock().unwrap();
        let ranges: Vec<_> = seen.iter().map(|s| (s.2.as_deref(), s.3)).collect();
        assert_eq!(
            ranges,
            [
                (Some("bytes 0-524287/*"), 524_288),
                (Some("bytes */*"), 0),
                (Some("bytes 262144-524287/*"), 262_144),
            ]
        );
    }
}
