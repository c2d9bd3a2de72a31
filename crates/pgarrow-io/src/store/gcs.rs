//! Writing to Google Cloud Storage through its JSON API: an object is written by a resumable
//! upload (its chunks sent in order, the object created only by the last one; cancelled, no
//! object), small ones (a manifest) by one media upload.
//!
//! BE ADVISED: the `object_store` crate writes through GCS's XML API, which Google serves
//! but the GCS emulators do not (fake-gcs-server has no XML uploads), so its writes could not
//! be tested here; the JSON API is GCS's own upload protocol and the emulators implement it.
//! Reads, lists and deletes still go through `object_store`, with the same credentials.

use std::sync::Arc;

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

    /// The uploads of `bucket` at `base`, with the store's credentials.
    pub(crate) fn new(
        base: String,
        bucket: String,
        credentials: GcpCredentialProvider,
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

    /// Sends `request` with the credentials; a reply `ok` does not take is refused as
    /// `what` of `name`.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        ok: impl Fn(StatusCode) -> bool,
        what: &str,
        name: &str,
    ) -> object_store::Result<reqwest::Response> {
        let response = self
            .authorized(request)
            .await?
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        if !ok(status) {
            let body = response.text().await.unwrap_or_default();
            return Err(refused(what, name, status, &body));
        }
        Ok(response)
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
        let response = self
            .exchange(
                request,
                |s| s.is_success(),
                "cannot start an upload of",
                name,
            )
            .await?;
        let uri = response
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
        match self
            .exchange(
                request,
                |s| s.is_success() || s == StatusCode::PRECONDITION_FAILED,
                "cannot create",
                name,
            )
            .await?
            .status()
        {
            StatusCode::PRECONDITION_FAILED => Err(object_store::Error::AlreadyExists {
                path: name.to_owned(),
                source: format!("{name}: another writer created it first").into(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) async fn put(&self, name: &str, bytes: Vec<u8>) -> object_store::Result<()> {
        let url = self.upload_url("media", name)?;
        let request = self
            .http
            .post(url)
            .header("Content-Type", "application/octet-stream")
            .body(bytes);
        self.exchange(request, |s| s.is_success(), "cannot write", name)
            .await
            .map(drop)
    }
}

impl Session {
    /// Sends `bytes` at `offset`; `total` on the last chunk (which makes the object).
    pub(crate) async fn send(
        &self,
        bytes: Vec<u8>,
        offset: u64,
        total: Option<u64>,
    ) -> object_store::Result<()> {
        let len = bytes.len() as u64;
        let range = match (len, total) {
            (0, Some(total)) => format!("bytes */{total}"),
            (_, Some(total)) => format!("bytes {offset}-{}/{total}", offset + len - 1),
            (_, None) => format!("bytes {offset}-{}/*", offset + len - 1),
        };
        let request = self
            .gcs
            .http
            .put(&self.uri)
            .header("Content-Range", range)
            .body(bytes);
        // 308: the chunk was taken, more are expected; the last one makes the object.
        let ok = |s: StatusCode| match total {
            None => s.as_u16() == 308,
            Some(_) => s.is_success(),
        };
        self.gcs
            .exchange(request, ok, "cannot upload to", &self.gcs.bucket)
            .await
            .map(drop)
    }

    /// Cancels the upload: no object is made of it.
    pub(crate) async fn cancel(&self) -> object_store::Result<()> {
        let request = self.gcs.http.delete(&self.uri);
        // GCS answers 499 to a cancelled upload; whatever it answers, the object is not made.
        self.gcs
            .authorized(request)
            .await?
            .send()
            .await
            .map(drop)
            .map_err(failed)
    }
}
