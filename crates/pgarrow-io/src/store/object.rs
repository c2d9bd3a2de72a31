//! Objects in S3, GCS and Azure (the `cloud` feature): an object's place and its store's
//! client, built from the environment and the storage options, with the errors of the
//! `object_store` crate told without secrets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, RetryConfig,
};
use url::Url;

use super::write::ObjectWriter;
use super::{
    Cloud, Location, StorageError, StorageOptions, StorageProblem, aws_profile, gcs, runtime,
};
use super::{DEFAULT_MAX_IN_FLIGHT, DEFAULT_PART_SIZE, shown_url};
use crate::sink::{Output, Remote};
use crate::{Error, Result};

/// How long one request may take, unless the `timeout` option says otherwise: long enough
/// for a 16 MiB part over a slow link (`object_store`'s own default is 30 s).
const DEFAULT_TIMEOUT: &str = "300s";

/// An object's place: its store (with its credentials and settings) and its key.
#[derive(Clone)]
pub struct ObjectLocation {
    store: Arc<Store>,
    path: ObjectPath,
}

/// One bucket's client.
pub(crate) struct Store {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// `s3://bucket`, for messages.
    root: String,
    pub(crate) cloud: Cloud,
    pub(crate) part_size: usize,
    pub(crate) max_in_flight: usize,
    /// Values that must never appear in a message.
    secrets: Vec<String>,
    /// GCS only: its uploads, through the JSON API (see `gcs`).
    pub(crate) gcs: Option<Arc<gcs::Gcs>>,
}

impl fmt::Debug for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ObjectLocation")
            .field(&self.to_string())
            .finish()
    }
}

impl fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.as_ref() {
            "" => write!(f, "{}/", self.store.root),
            p => write!(f, "{}/{p}", self.store.root),
        }
    }
}

impl From<ObjectLocation> for Location {
    fn from(o: ObjectLocation) -> Location {
        Location::Object(o)
    }
}

/// pgarrow's own keys, which are not the `object_store` crate's.
const OWN_KEYS: &[&str] = &[
    "part_size",
    "max_in_flight",
    "max_retries",
    "retry_timeout",
    "aws_profile",
    "profile",
];

/// Option and environment keys whose values are secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "token", "key", "password", "sas", "signature"]
        .iter()
        .any(|w| key.contains(w))
        && !key.ends_with("key_id")
        && !key.ends_with("_file")
        && !key.contains("kms_key")
}

impl StorageOptions {
    fn first(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|k| self.get(k))
    }
}

impl ObjectLocation {
    /// The object of URL `text` in `cloud`, its store's client made from the environment and
    /// `options` (no request is sent yet); `bad_url` words a malformed URL's error.
    pub(crate) fn parse(
        cloud: Cloud,
        text: &str,
        options: &StorageOptions,
        bad_url: &dyn Fn(&dyn fmt::Display) -> Error,
    ) -> Result<ObjectLocation> {
        // An object's key may hold `?` and `#` (a pattern's wildcard, a name): they are the
        // key's, not a query or a fragment.
        let escaped = text
            .replace('%', "%25")
            .replace('?', "%3F")
            .replace('#', "%23");
        let url = Url::parse(&escaped).map_err(|e| bad_url(&e))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad_url(&"it names no bucket or container"));
        }
        let path = ObjectPath::from_url_path(url.path()).map_err(|e| bad_url(&e))?;
        let store = Store::build(cloud, &url, options)?;
        Ok(ObjectLocation {
            store: Arc::new(store),
            path,
        })
    }

    /// The same object of the same store's client.
    pub(crate) fn same(&self, other: &ObjectLocation) -> bool {
        Arc::ptr_eq(&self.store, &other.store) && self.path == other.path
    }

    /// The last segment of the key.
    pub(crate) fn file_name(&self) -> Option<String> {
        self.path.filename().map(str::to_owned)
    }

    /// What a sink writes to: an upload completed at the end.
    pub(crate) fn output(&self) -> Output {
        let o = self.clone();
        Output::Remote(Remote::new(o.to_string(), move || {
            ObjectWriter::start(&o)
                .map(|w| Box::new(w) as Box<dyn crate::sink::RemoteWrite>)
                .map_err(std::io::Error::other)
        }))
    }

    /// The same object, its uploads held to `bytes` of buffers (see
    /// [`Location::with_upload_memory`](super::Location::with_upload_memory)).
    pub(crate) fn with_upload_memory(&self, bytes: usize) -> ObjectLocation {
        let s = &self.store;
        let in_flight = (bytes / s.part_size)
            .saturating_sub(1)
            .clamp(1, s.max_in_flight.max(1));
        ObjectLocation {
            store: Arc::new(Store {
                store: s.store.clone(),
                root: s.root.clone(),
                cloud: s.cloud,
                part_size: s.part_size,
                max_in_flight: in_flight,
                secrets: s.secrets.clone(),
                gcs: s.gcs.clone(),
            }),
            path: self.path.clone(),
        }
    }

    /// The most bytes one upload holds: `part_size × (max_in_flight + 1)`.
    pub(crate) fn upload_memory(&self) -> usize {
        self.store.part_size * (self.store.max_in_flight + 1)
    }

    /// The entry `name` under this prefix.
    pub(crate) fn child(&self, name: &str) -> ObjectLocation {
        ObjectLocation {
            store: self.store.clone(),
            path: self.path.clone().join(name),
        }
    }

    /// The object at `relative` (`/`-separated segments, taken as they are) under this one.
    pub(crate) fn descendant(&self, relative: &str) -> ObjectLocation {
        let mut path = self.path.clone();
        for segment in relative.split('/').filter(|s| !s.is_empty()) {
            path = match object_store::path::PathPart::parse(segment) {
                Ok(part) => path.join(part),
                // A control character or a "." segment: escaped as any name would be.
                Err(_) => path.join(segment),
            };
        }
        ObjectLocation {
            store: self.store.clone(),
            path,
        }
    }

    /// The object at `path` in the same bucket.
    pub(crate) fn at(&self, path: ObjectPath) -> ObjectLocation {
        ObjectLocation {
            store: self.store.clone(),
            path,
        }
    }

    /// The object's key.
    pub fn key(&self) -> &str {
        self.path.as_ref()
    }

    /// Which cloud.
    pub fn cloud(&self) -> Cloud {
        self.store.cloud
    }

    pub(crate) fn path(&self) -> &ObjectPath {
        &self.path
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// An error of `action` on this object, its message cleared of secrets.
    pub(crate) fn error(&self, action: &'static str, e: object_store::Error) -> StorageError {
        StorageError::new(self.to_string(), action, &e, &self.store.secrets)
    }

    pub(crate) fn read_all(&self) -> Result<Vec<u8>> {
        let (store, path) = (self.store.store.clone(), self.path.clone());
        runtime::run(async move { store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| self.error("cannot read", e).into())
    }

    /// The bytes `ranges` name (several ranges in one call: the store may coalesce them).
    pub(crate) fn read_ranges(&self, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        let (store, path) = (self.store.store.clone(), self.path.clone());
        let ranges = ranges.to_vec();
        runtime::run(async move { store.get_ranges(&path, &ranges).await })
            .map_err(|e| self.error("cannot read", e).into())
    }

    pub(crate) fn put(&self, bytes: &[u8]) -> Result<()> {
        let (store, path) = (self.store.store.clone(), self.path.clone());
        let result = match self.store.gcs.clone() {
            Some(gcs) => {
                let bytes = bytes.to_vec();
                runtime::run(async move { gcs.put(path.as_ref(), bytes).await })
            }
            None => {
                let payload = PutPayload::from(bytes.to_vec());
                runtime::run(async move { store.put(&path, payload).await.map(drop) })
            }
        };
        result.map_err(|e| self.error("cannot write", e).into())
    }

    /// Writes the object only if there is none: `false` when one is there (another writer's).
    /// The store decides atomically (S3 and Azure `If-None-Match: *`, GCS
    /// `ifGenerationMatch=0`).
    pub(crate) fn create(&self, bytes: &[u8]) -> Result<bool> {
        let (store, path) = (self.store.store.clone(), self.path.clone());
        let result = match self.store.gcs.clone() {
            Some(gcs) => {
                let bytes = bytes.to_vec();
                runtime::run(async move { gcs.create(path.as_ref(), bytes).await })
            }
            None => {
                let payload = PutPayload::from(bytes.to_vec());
                let options = PutOptions::from(PutMode::Create);
                runtime::run(async move { store.put_opts(&path, payload, options).await.map(drop) })
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.error("cannot create", e).into()),
        }
    }

    /// The names of the objects directly under this prefix (as a directory), with their sizes.
    pub(crate) fn list_names(&self) -> Result<Vec<(String, u64)>> {
        let (store, path) = (self.store.store.clone(), self.path.clone());
        runtime::run(async move {
            let prefix = (!path.as_ref().is_empty()).then_some(path);
            store.list_with_delimiter(prefix.as_ref()).await
        })
        .map(|listed| {
            listed
                .objects
                .into_iter()
                .filter_map(|m| Some((m.location.filename()?.to_owned(), m.size)))
                .collect()
        })
        .map_err(|e| self.error("cannot list", e).into())
    }

    pub(crate) fn delete(&self) -> Result<()> {
        let (store, path) = (self.store.store.clone(), self.path.clone());
        match runtime::run(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("cannot remove", e).into()),
        }
    }

    /// The object's size, `None` when there is none.
    pub(crate) fn size(&self) -> Result<Option<u64>> {
        let (store, path) = (self.store.store.clone(), self.path.clone());
        match runtime::run(async move { store.head(&path).await }) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("cannot look up", e).into()),
        }
    }

    /// The objects under this prefix (as a directory: `prefix/...`), with their sizes.
    pub(crate) fn list(&self) -> Result<Vec<(ObjectPath, u64)>> {
        use futures_util::TryStreamExt as _;
        let (store, path) = (self.store.store.clone(), self.path.clone());
        runtime::run(async move {
            let prefix = (!path.as_ref().is_empty()).then_some(path);
            store
                .list(prefix.as_ref())
                .map_ok(|m| (m.location, m.size))
                .try_collect::<Vec<_>>()
                .await
        })
        .map_err(|e| self.error("cannot list", e).into())
    }

    /// Whether the bucket is there and this client may write to it, asked without leaving
    /// anything behind: an upload started and aborted where a started upload is a request
    /// (S3, GCS), a marker object written and removed where it is not (Azure).
    pub(crate) fn check_writable(&self) -> Result<()> {
        let marker = self.child(&format!(".pgarrow-write-check{}", marker_suffix()));
        let (store, path, cloud, gcs) = (
            self.store.store.clone(),
            marker.path.clone(),
            self.store.cloud,
            self.store.gcs.clone(),
        );
        runtime::run(async move {
            if let Some(gcs) = gcs {
                return gcs.start(path.as_ref()).await?.cancel().await;
            }
            match cloud {
                Cloud::Azure => {
                    store.put(&path, PutPayload::default()).await?;
                    forget_missing(store.delete(&path).await)
                }
                Cloud::S3 | Cloud::Gcs => {
                    let mut upload = store.put_multipart(&path).await?;
                    upload.abort().await
                }
            }
        })
        .map_err(|e| self.error("cannot write to", e).into())
    }
}

/// A marker name's suffix of its own (the process and the moment): writers checking one
/// prefix at once each write and remove their own marker, never another's. It ends in
/// `.parquet`: stores that take only a table's own kinds of object under a table's prefix
/// (SeaweedFS's table buckets: `*.parquet`, `*.avro`, `*.metadata.json`) refuse any other
/// name, and readers skip a name that starts with a dot.
pub(crate) fn marker_suffix() -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("-{}-{nanos}-{n}.parquet", std::process::id())
}

/// A marker's removal, a marker already gone being no error.
pub(crate) fn forget_missing(done: object_store::Result<()>) -> object_store::Result<()> {
    match done {
        Err(object_store::Error::NotFound { .. }) => Ok(()),
        other => other,
    }
}

impl StorageError {
    pub(crate) fn new(
        url: String,
        action: &'static str,
        e: &object_store::Error,
        secrets: &[String],
    ) -> Self {
        use object_store::Error as E;
        let problem = match e {
            E::NotFound { .. } => StorageProblem::NotFound,
            E::Unauthenticated { .. } => StorageProblem::Unauthenticated,
            E::PermissionDenied { .. } => StorageProblem::PermissionDenied,
            E::UnknownConfigurationKey { .. } => StorageProblem::Config,
            other => classify_text(&other.to_string()),
        };
        StorageError {
            url,
            action,
            problem,
            message: scrub(&condense(&full_message(e)), secrets),
        }
    }
}

/// Error texts the `object_store` crate leaves as generic, by the status and code they carry.
fn classify_text(text: &str) -> StorageProblem {
    let has = |needle: &str| text.contains(needle);
    if has("NoSuchBucket") || has("ContainerNotFound") || has("404 Not Found") {
        StorageProblem::NotFound
    } else if has("InvalidAccessKeyId")
        || has("SignatureDoesNotMatch")
        || has("AuthenticationFailed")
        || has("401 Unauthorized")
        || has("credential")
    {
        StorageProblem::Unauthenticated
    } else if has("AccessDenied") || has("AuthorizationPermissionMismatch") || has("403 Forbidden")
    {
        StorageProblem::PermissionDenied
    } else {
        StorageProblem::Other
    }
}

/// A store's error text made short: the service's own code and message (from an XML or JSON
/// error body) and the request that got it, instead of the whole body.
fn condense(text: &str) -> String {
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(text[start..end].trim().to_owned())
    };
    let code = between("<Code>", "</Code>");
    let message = between("<Message>", "</Message>")
        .or_else(|| between("\"message\": \"", "\""))
        .or_else(|| between("\"message\":\"", "\""));
    let request = between("Error performing ", " in ");
    let status = between("status code: ", ":").or_else(|| between("status code: ", "\n"));
    match (code, message, request) {
        (code, Some(message), Some(request)) => {
            let message = message.split('\n').next().unwrap_or_default().to_owned();
            format!(
                "{}{message} ({request}{})",
                code.map(|c| format!("{c}: ")).unwrap_or_default(),
                status.map(|s| format!(": {s}")).unwrap_or_default()
            )
        }
        (Some(code), None, Some(request)) => format!(
            "{code} ({request}{})",
            status.map(|s| format!(": {s}")).unwrap_or_default()
        ),
        _ => text.to_owned(),
    }
}

/// The error and its causes, one after another.
fn full_message(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// `text` with every secret value and every URL's query string (Azure SAS signatures travel
/// there) replaced.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "***");
    }
    for key in [
        "sig=",
        "signature=",
        "X-Amz-Signature=",
        "X-Amz-Credential=",
        "upload_id=",
    ] {
        let mut from = 0;
        while let Some(at) = out[from..].find(key) {
            let start = from + at + key.len();
            let end = out[start..]
                .find(['&', ' ', '"', '\'', ')'])
                .map_or(out.len(), |n| start + n);
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    out
}

fn parse_size(key: &str, value: &str) -> Result<usize> {
    let v = value.trim();
    let (number, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => 0,
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Error::usage(format!(
                "storage option {key}={value}: expected a size such as 16MiB"
            ))
        })
}

fn parse_number(key: &str, value: &str) -> Result<u64> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::usage(format!("storage option {key}={value}: expected a number")))
}

impl Store {
    fn build(cloud: Cloud, url: &Url, options: &StorageOptions) -> Result<Store> {
        install_crypto();
        let shown = shown_url(url.as_str());
        let root = match shown.find("://") {
            Some(at) => {
                let rest = &shown[at + 3..];
                shown[..at + 3 + rest.find('/').unwrap_or(rest.len())].to_owned()
            }
            None => shown.clone(),
        };
        let part_size = match options.get("part_size") {
            Some(v) => parse_size("part_size", v)?,
            None => DEFAULT_PART_SIZE,
        };
        // GCS takes chunks of whole 256 KiB.
        let part_size = match cloud {
            Cloud::Gcs => part_size - part_size % gcs::CHUNK_MULTIPLE,
            _ => part_size,
        };
        if part_size > 5 << 30 {
            return Err(Error::usage(format!(
                "storage option part_size={part_size}: parts are at most 5 GiB (S3's most)"
            )));
        }
        if part_size < 5 << 20 {
            return Err(Error::usage(format!(
                "storage option part_size={part_size}: parts are at least 5 MiB (S3's least)"
            )));
        }
        let max_in_flight = match options.get("max_in_flight") {
            // A resumable upload takes its chunks in order, one at a time.
            _ if cloud == Cloud::Gcs => 1,
            Some(v) => parse_number("max_in_flight", v)?.clamp(1, 64) as usize,
            None => DEFAULT_MAX_IN_FLIGHT,
        };
        let mut retry = RetryConfig::default();
        if let Some(v) = options.get("max_retries") {
            retry.max_retries = parse_number("max_retries", v)? as usize;
        }
        if let Some(v) = options.get("retry_timeout") {
            retry.retry_timeout = Duration::from_secs(parse_number("retry_timeout", v)?);
        }
        let mut secrets: Vec<String> = url
            .password()
            .map(str::to_owned)
            .into_iter()
            // `abfss://container@account`: the container, not a secret.
            .chain(
                std::iter::once(url.username().to_owned())
                    .filter(|u| !u.is_empty() && cloud != Cloud::Azure),
            )
            .collect();
        secrets.extend(
            options
                .pairs
                .iter()
                .filter(|(k, _)| is_secret_key(k))
                .map(|(_, v)| v.clone()),
        );
        secrets.extend(
            std::env::vars()
                .filter(|(k, _)| {
                    ["AWS_", "AZURE_", "GOOGLE_"]
                        .iter()
                        .any(|p| k.starts_with(p))
                        && is_secret_key(k)
                })
                .map(|(_, v)| v),
        );
        let config_error = |key: &str| {
            Error::usage(format!(
                "unknown storage option {key} for {root} (see docs/src/object-stores.md, \"Object stores\" in the book)"
            ))
        };
        let build_error = |e: object_store::Error, secrets: &[String]| {
            Error::Storage(StorageError {
                url: shown.clone(),
                action: "cannot use",
                problem: StorageProblem::Config,
                message: scrub(&full_message(&e), secrets),
            })
        };
        let mut gcs_uploads = None;
        let theirs = options
            .pairs
            .iter()
            .filter(|(k, _)| !OWN_KEYS.contains(&k.as_str()));
        let store: Arc<dyn ObjectStore> = match cloud {
            Cloud::S3 => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
                let profile = aws_profile::chosen(options.first(&["aws_profile", "profile"]));
                // `aws_profile=NAME` is the CLI's `--profile`: its keys beat the environment's.
                let profile_option = options.first(&["aws_profile", "profile"]).is_some();
                let keys_given = (!profile_option
                    && std::env::var_os("AWS_ACCESS_KEY_ID").is_some())
                    || options
                        .first(&["aws_access_key_id", "access_key_id"])
                        .is_some()
                    || std::env::var_os("AWS_WEB_IDENTITY_TOKEN_FILE").is_some();
                if let Some(p) = aws_profile::load(&profile, keys_given)? {
                    for (key, value) in p.settings() {
                        if is_secret_key(key) {
                            secrets.push(value.clone());
                        }
                        let key: AmazonS3ConfigKey = key.parse().map_err(|_| config_error(key))?;
                        b = b.with_config(key, value);
                    }
                }
                if let Ok(key) = "timeout".parse::<AmazonS3ConfigKey>() {
                    b = b.with_config(key, DEFAULT_TIMEOUT);
                }
                for (k, v) in theirs {
                    let key: AmazonS3ConfigKey = k.parse().map_err(|_| config_error(k))?;
                    b = b.with_config(key, v);
                }
                Arc::new(
                    b.with_retry(retry)
                        .build()
                        .map_err(|e| build_error(e, &secrets))?,
                )
            }
            Cloud::Gcs => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
                if let Ok(key) = "timeout".parse::<GoogleConfigKey>() {
                    b = b.with_config(key, DEFAULT_TIMEOUT);
                }
                for (k, v) in theirs {
                    let key: GoogleConfigKey = k.parse().map_err(|_| config_error(k))?;
                    b = b.with_config(key, v);
                }
                let base = gcs::Gcs::base_url(&b);
                let built = b
                    .with_retry(retry.clone())
                    .build()
                    .map_err(|e| build_error(e, &secrets))?;
                let bucket = url.host_str().unwrap_or_default().to_owned();
                gcs_uploads = Some(Arc::new(
                    gcs::Gcs::new(base, bucket, built.credentials().clone(), retry)
                        .map_err(|e| build_error(e, &secrets))?,
                ));
                Arc::new(built)
            }
            Cloud::Azure => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                if let Ok(key) = "timeout".parse::<AzureConfigKey>() {
                    b = b.with_config(key, DEFAULT_TIMEOUT);
                }
                for (k, v) in theirs {
                    let key: AzureConfigKey = k.parse().map_err(|_| config_error(k))?;
                    b = b.with_config(key, v);
                }
                Arc::new(
                    b.with_retry(retry)
                        .build()
                        .map_err(|e| build_error(e, &secrets))?,
                )
            }
        };
        Ok(Store {
            store,
            root,
            cloud,
            part_size,
            max_in_flight,
            secrets,
            gcs: gcs_uploads,
        })
    }
}

/// The TLS of the object stores' HTTP client is rustls on ring (the crypto the wire protocol
/// already uses), installed once as the process's default.
pub(super) fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another library of the process may have installed one first: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn paths_and_urls() {
        let none = StorageOptions::new();
        assert!(Location::parse("a/b.parquet", &none).unwrap().is_local());
        assert_eq!(
            Location::parse("file:///tmp/x.parquet", &none).unwrap(),
            Location::Local(PathBuf::from("/tmp/x.parquet"))
        );
        let o = Location::parse("s3://bucket/dir/x.parquet", &none).unwrap();
        assert_eq!(o.to_string(), "s3://bucket/dir/x.parquet");
        assert_eq!(o.join("y").to_string(), "s3://bucket/dir/x.parquet/y");
        assert_eq!(o.file_name().as_deref(), Some("x.parquet"));
        let e = Location::parse("ftp://host/x", &none).unwrap_err();
        assert!(e.is_usage(), "{e}");
        assert!(e.to_string().contains("ftp://"), "{e}");
        let pattern = Location::parse("s3://bucket/p/part-0?.parquet", &none).unwrap();
        assert_eq!(pattern.to_string(), "s3://bucket/p/part-0?.parquet");
        let e = Location::parse("s3:/bucket/x", &none).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("not a URL"), "{e}");
        let e = Location::parse("s3:///x", &none).unwrap_err();
        assert!(e.to_string().contains("no bucket"), "{e}");
    }

    #[test]
    fn upload_memory_is_held_to_a_share() {
        let o = Location::parse("s3://b/k", &StorageOptions::new()).unwrap();
        assert_eq!(
            o.upload_memory(),
            DEFAULT_PART_SIZE * (DEFAULT_MAX_IN_FLIGHT + 1)
        );
        assert_eq!(o.with_upload_memory(48 << 20).upload_memory(), 48 << 20);
        // Never below two parts: one filling, one going out.
        assert_eq!(
            o.with_upload_memory(1).upload_memory(),
            2 * DEFAULT_PART_SIZE
        );
        // Never above what the options allow.
        assert_eq!(
            o.with_upload_memory(1 << 40).upload_memory(),
            o.upload_memory()
        );
        let gcs = Location::parse("gs://b/k", &StorageOptions::new()).unwrap();
        assert_eq!(
            gcs.upload_memory(),
            2 * DEFAULT_PART_SIZE,
            "GCS: one chunk in flight"
        );
        assert_eq!(Location::from("x").upload_memory(), 0);
    }

    #[test]
    fn unknown_options_and_bad_values_are_refused_by_name() {
        let bad = StorageOptions::new().with_option("aws_endpoit", "http://x");
        let e = Location::parse("s3://b/k", &bad).unwrap_err();
        assert!(e.is_usage() && e.to_string().contains("aws_endpoit"), "{e}");
        let small = StorageOptions::new().with_option("part_size", "1MiB");
        let e = Location::parse("s3://b/k", &small).unwrap_err();
        assert!(e.to_string().contains("5 MiB"), "{e}");
        assert!(StorageOptions::parse_pair("novalue").is_err());
        let e = StorageOptions::parse_pair("s3cr3tvaluewithoutkey").unwrap_err();
        assert!(!e.to_string().contains("s3cr3tvaluewithoutkey"), "{e}");
        assert_eq!(parse_size("part_size", "16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("part_size", "6000000").unwrap(), 6_000_000);
    }

    #[test]
    fn secrets_never_show() {
        let options = StorageOptions::new()
            .with_option("aws_secret_access_key", "verysecretvalue")
            .with_option("aws_region", "eu-west-1");
        assert!(!format!("{options:?}").contains("verysecretvalue"));
        let text = scrub(
            "GET https://a.blob.core.windows.net/c/x?sv=1&sig=abcdef%3D&se=2 failed: verysecretvalue",
            &["verysecretvalue".to_owned()],
        );
        assert!(
            !text.contains("abcdef") && !text.contains("verysecretvalue"),
            "{text}"
        );
        assert_eq!(shown_url("s3://user:pw@b/x"), "s3://***@b/x");
        assert_eq!(shown_url("s3://AKIAKEY@b/x"), "s3://***@b/x");
        assert_eq!(
            shown_url("abfss://c@acct.dfs.core.windows.net/x"),
            "abfss://c@acct.dfs.core.windows.net/x"
        );
        let twice = scrub("a?sig=one&x=1 b?sig=two", &[]);
        assert!(!twice.contains("one") && !twice.contains("two"), "{twice}");
        assert!(is_secret_key("aws_secret_access_key"));
        assert!(is_secret_key("azure_storage_sas_key"));
        assert!(!is_secret_key("aws_access_key_id"));
        assert!(!is_secret_key("aws_region"));
    }
}
