//! Iceberg's REST catalog, as its OpenAPI specification gives it: `GET /v1/config` (the
//! server's defaults and overrides of the client's properties, and the prefix of every other
//! path), namespaces (made when missing), tables loaded, created and committed to through
//! requirements and updates (the `spec` module).
//!
//! A commit is a compare-and-swap the server holds: `409` is a lost race (the caller reads the
//! table again, retried as every lost race is); an answer that never came (a `5xx`, a timeout, a
//! connection cut after the request went out) leaves the commit's fate unknown, so the table
//! is loaded again and the commit counts as landed when the table carries what it added (its
//! snapshot, by ID), else it is sent again: a commit is applied once.
//!
//! Properties are pyiceberg's (`uri`, `warehouse`, `credential`, `token`, `scope`,
//! `oauth2-server-uri`, `prefix`, `header.*`, `s3.*`, ...): [`RestCatalogOptions`]. The
//! storage properties (the user's, then the server's configuration, then a loaded table's
//! `config`, such as vended credentials) become the object store options of the table's
//! files. Secrets are never shown: `Debug` and every error print property names only.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use pgarrow::io::StorageOptions;
use pgarrow::{Error, ErrorKind, Result};
use serde_json::{Value as Json, json};

use super::catalog::{Change, Committed, Loaded, TableChange, Together};
use super::spec::{TableMetadata, TableRequirement, TableUpdate};

/// The settings of a REST catalog: pyiceberg's catalog properties.
///
/// `uri` is the catalog's address (`https://host/api/catalog`, without `/v1`). The others:
/// - `warehouse`: the warehouse the server is asked for (`GET /v1/config?warehouse=`).
/// - `credential`: OAuth2 client credentials, `CLIENT_ID:CLIENT_SECRET` (or the secret alone),
///   exchanged at `oauth2-server-uri` (default: the catalog's `v1/oauth/tokens`) for a token,
///   under `scope` (default `catalog`; `audience` and `resource` are sent when given), and
///   again before it expires.
/// - `token`: a bearer token, sent as it is.
/// - `prefix`: the path prefix, when the server's configuration gives none.
/// - `header.NAME`: a header sent with every request (`header.X-Iceberg-Access-Delegation`
///   defaults to `vended-credentials`).
/// - `ssl.cabundle`: a PEM file of the certificate authorities to trust (default: the
///   system's).
/// - `s3.endpoint`, `s3.access-key-id`, `s3.secret-access-key`, `s3.session-token`,
///   `s3.region`, `s3.path-style-access`, `adls.account-name`, `adls.account-key`,
///   `adls.sas-token`, `gcs.service-account`, ...: where and how the table's files are read
///   and written, as [`storage_options`] maps them.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestCatalogOptions {
    properties: BTreeMap<String, String>,
}

impl fmt::Debug for RestCatalogOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: the address, then the names of the others.
        f.debug_struct("RestCatalogOptions")
            .field("uri", &self.get("uri").unwrap_or_default())
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RestCatalogOptions {
    /// The catalog at `uri`.
    pub fn new(uri: impl Into<String>) -> RestCatalogOptions {
        RestCatalogOptions::default().with_property("uri", uri)
    }

    /// Sets property `key` (a later value of a key wins).
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties
            .insert(key.into().trim().to_owned(), value.into());
        self
    }

    /// Property `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// Every property, by name.
    pub fn properties(&self) -> impl Iterator<Item = (&str, &str)> {
        self.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The catalog's address.
    pub fn uri(&self) -> &str {
        self.get("uri").unwrap_or_default()
    }
}

/// The object store options of Iceberg's storage properties (pyiceberg's names) among
/// `properties`, in the keys of [`StorageOptions`]. Properties it does not know are left out.
pub fn storage_options<'a>(
    properties: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in properties {
        let key = match k {
            "s3.endpoint" => {
                if v.starts_with("http://") {
                    out.push(("aws_allow_http".into(), "true".into()));
                }
                "aws_endpoint"
            }
            "s3.access-key-id" => "aws_access_key_id",
            "s3.secret-access-key" => "aws_secret_access_key",
            "s3.session-token" => "aws_session_token",
            "s3.region" | "client.region" => "aws_region",
            "s3.path-style-access" => {
                let virtual_hosted = if v.eq_ignore_ascii_case("true") {
                    "false"
                } else {
                    "true"
                };
                out.push((
                    "aws_virtual_hosted_style_request".into(),
                    virtual_hosted.into(),
                ));
                continue;
            }
            "client.access-key-id" => "aws_access_key_id",
            "client.secret-access-key" => "aws_secret_access_key",
            "client.session-token" => "aws_session_token",
            "adls.account-name" => "azure_storage_account_name",
            "adls.account-key" => "azure_storage_account_key",
            "adls.sas-token" => "azure_storage_sas_key",
            "adls.client-id" => "azure_storage_client_id",
            "adls.client-secret" => "azure_storage_client_secret",
            "adls.tenant-id" => "azure_storage_tenant_id",
            "gcs.service-account" | "gcs.service-account-path" => "google_service_account",
            "gcs.service-account-key" => "google_service_account_key",
            // `adls.sas-token.ACCOUNT.dfs.core.windows.net`, as vended credentials name it.
            k if k.starts_with("adls.sas-token.") => "azure_storage_sas_key",
            _ => continue,
        };
        out.push((key.to_owned(), v.to_owned()));
    }
    out
}

/// The properties pyiceberg would give catalog `name`: from its configuration file
/// (`$PYICEBERG_HOME/.pyiceberg.yaml`, else `~/.pyiceberg.yaml`: the `catalog:` map's entry of
/// that name, nested keys joined by dots), then its environment variables
/// (`PYICEBERG_CATALOG__NAME__KEY`: `__` between levels, `_` for `-`), which win.
///
/// # Errors
/// A configuration file that cannot be read, or whose catalog entry is not a map of text.
pub fn pyiceberg_properties(name: &str) -> Result<Vec<(String, String)>> {
    let dir = std::env::var_os("PYICEBERG_HOME").or_else(|| std::env::var_os("HOME"));
    let mut out = Vec::new();
    if let Some(dir) = dir {
        let path = std::path::Path::new(&dir).join(".pyiceberg.yaml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                out = yaml_catalog(&text, name)
                    .map_err(|e| usage(format!("{}: {e}", path.display())))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(usage(format!("{}: {e}", path.display()))),
        }
    }
    let prefix = format!("PYICEBERG_CATALOG__{}__", name.to_ascii_uppercase());
    for (k, v) in std::env::vars() {
        if let Some(key) = k.strip_prefix(&prefix) {
            let key = key
                .to_ascii_lowercase()
                .replace("__", ".")
                .replace('_', "-");
            out.retain(|(k, _)| *k != key);
            out.push((key, v));
        }
    }
    Ok(out)
}

/// Catalog `name`'s properties in a `.pyiceberg.yaml`: the block YAML pyiceberg's files are
/// written in (maps by indentation, `key: value` scalars, plain, single- or double-quoted,
/// `#` comments); nested keys are joined by dots (`ssl: {cabundle: x}` is `ssl.cabundle`).
fn yaml_catalog(text: &str, name: &str) -> std::result::Result<Vec<(String, String)>, String> {
    // The path of keys down to each line, by indentation.
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let Some((key, value)) = line.trim().split_once(':') else {
            return Err(format!("line {}: not `key: value`", n + 1));
        };
        while path.last().is_some_and(|(i, _)| *i >= indent) {
            path.pop();
        }
        let key = unquote(key.trim());
        let value = value.trim();
        if value.is_empty() {
            path.push((indent, key));
            continue;
        }
        let levels: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
        if levels.len() >= 2 && levels[0] == "catalog" && levels[1] == name {
            let mut full: Vec<&str> = levels[2..].to_vec();
            full.push(&key);
            out.push((full.join("."), unquote(value)));
        }
    }
    Ok(out)
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('#', None) if i == 0 || line[..i].ends_with(char::is_whitespace) => {
                return &line[..i];
            }
            _ => {}
        }
    }
    line
}

fn unquote(text: &str) -> String {
    let t = text.trim();
    if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
        return t[1..t.len() - 1]
            .replace("\\\"", "\"")
            .replace("\\\\", "\\");
    }
    if t.len() >= 2 && t.starts_with('\'') && t.ends_with('\'') {
        return t[1..t.len() - 1].replace("''", "'");
    }
    t.to_owned()
}

/// How long before a token expires it is renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Answers that never came: how many times a commit is sent again after one.
const UNKNOWN_TRIES: usize = 5;

/// How the catalog is authenticated to.
enum Auth {
    None,
    Bearer(String),
    /// OAuth2 client credentials, exchanged for a token that is renewed before it expires.
    Client {
        server: String,
        form: Vec<(String, String)>,
        token: Option<(String, Option<Instant>)>,
    },
    /// AWS SigV4: each request signed (AWS Glue, S3 Tables).
    SigV4(Box<super::sigv4::SigV4>),
}

/// A REST catalog's session: the HTTP client, the properties after the server's
/// configuration, and the token.
pub(crate) struct RestCatalog {
    http: reqwest::Client,
    /// `uri` + `/v1`.
    base: String,
    /// The path prefix (segments after `/v1`), empty when none.
    prefix: Vec<String>,
    auth: Auth,
    headers: Vec<(String, String)>,
    /// The catalog's properties: the server's defaults, the client's, the server's overrides.
    properties: BTreeMap<String, String>,
    /// The user's storage options, before the catalog's.
    user_storage: StorageOptions,
    /// The storage of the table loaded last.
    storage: StorageOptions,
    /// When the soonest of its vended credentials expires (milliseconds since the epoch).
    storage_expires_ms: Option<i64>,
    /// Whether the server offers multi-table transactions.
    pub(crate) transactions: bool,
    /// Whether the server takes an `Idempotency-Key` (its configuration gives the keys'
    /// lifetime): a commit sent again under its key is applied once by the server itself.
    idempotent: bool,
}

impl fmt::Debug for RestCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestCatalog")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// What answer a table's metadata came in: a load's (with the table's storage configuration)
/// or a commit's (without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loads {
    Table,
    Commit,
}

/// An HTTP exchange's outcome: the status and body, or no answer at all.
enum Answer {
    Got(u16, Vec<u8>),
    /// The request may or may not have reached the server (a timeout, a cut connection).
    Lost(String),
}

impl RestCatalog {
    /// A session with the catalog `options` name: the token fetched (when credentials are
    /// given) and the server's configuration read.
    pub(crate) async fn connect(
        options: &RestCatalogOptions,
        storage: &StorageOptions,
    ) -> Result<RestCatalog> {
        let uri = options.uri().trim_end_matches('/');
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            return Err(usage(format!(
                "a REST catalog's uri is an http:// or https:// address, not {uri:?}"
            )));
        }
        // AWS Glue's and S3 Tables' catalogs authenticate each request by its signature.
        let sigv4 = options
            .get("rest.sigv4-enabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let http = client(options)?;
        let mut headers = vec![(
            "X-Iceberg-Access-Delegation".to_owned(),
            "vended-credentials".to_owned(),
        )];
        for (k, v) in options.properties() {
            if let Some(name) = k.strip_prefix("header.") {
                headers.retain(|(h, _)| !h.eq_ignore_ascii_case(name));
                headers.push((name.to_owned(), v.to_owned()));
            }
        }
        let auth = match (options.get("token"), options.get("credential")) {
            _ if sigv4 => Auth::SigV4(Box::new(super::sigv4::SigV4::new(
                |k| options.get(k).map(str::to_owned),
                |k| std::env::var(k).ok(),
            )?)),
            (_, Some(credential)) => {
                let (id, secret) = match credential.split_once(':') {
                    Some((id, secret)) => (Some(id), secret),
                    None => (None, credential),
                };
                let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
                if let Some(id) = id {
                    form.push(("client_id".into(), id.to_owned()));
                }
                form.push(("client_secret".into(), secret.to_owned()));
                form.push((
                    "scope".into(),
                    options.get("scope").unwrap_or("catalog").to_owned(),
                ));
                for extra in ["audience", "resource"] {
                    if let Some(v) = options.get(extra) {
                        form.push((extra.into(), v.to_owned()));
                    }
                }
                let server = options
                    .get("oauth2-server-uri")
                    .map_or_else(|| format!("{uri}/v1/oauth/tokens"), str::to_owned);
                Auth::Client {
                    server,
                    form,
                    token: None,
                }
            }
            (Some(token), None) => Auth::Bearer(token.to_owned()),
            (None, None) => Auth::None,
        };
        let mut catalog = RestCatalog {
            http,
            base: format!("{uri}/v1"),
            prefix: Vec::new(),
            auth,
            headers,
            properties: BTreeMap::new(),
            user_storage: storage.clone(),
            storage: storage.clone(),
            storage_expires_ms: None,
            transactions: false,
            idempotent: false,
        };
        catalog.configure(options).await?;
        Ok(catalog)
    }

    /// Reads `GET /v1/config`: the server's defaults under the client's properties, its
    /// overrides over them; the prefix; the endpoints it offers.
    async fn configure(&mut self, options: &RestCatalogOptions) -> Result<()> {
        let mut url = format!("{}/config", self.base);
        if let Some(w) = options.get("warehouse") {
            url.push_str("?warehouse=");
            url.extend(url::form_urlencoded::byte_serialize(w.as_bytes()));
        }
        let body = self
            .expect(reqwest::Method::GET, &url, None, &[200])
            .await?;
        let config: Json = parse(&body, "GET /v1/config")?;
        self.no_error(&config, &body, "GET /v1/config")?;
        let strings = |key: &str| -> BTreeMap<String, String> {
            config[key]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
                .collect()
        };
        let mut properties = strings("defaults");
        properties.extend(
            options
                .properties()
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        properties.extend(strings("overrides"));
        self.prefix = properties
            .get("prefix")
            .map(|p| {
                p.split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        // A server that lists its endpoints says whether it takes multi-table transactions;
        // one that lists none is asked (the endpoint is in the specification since 1.5).
        self.transactions = match config["endpoints"].as_array() {
            Some(list) => list.iter().any(|e| {
                e.as_str()
                    .is_some_and(|e| e.ends_with("/transactions/commit"))
            }),
            None => true,
        };
        self.idempotent = config.get("idempotency-key-lifetime").is_some();
        self.storage = with_storage(&self.user_storage, properties.iter());
        self.properties = properties;
        Ok(())
    }

    /// A success status whose body is an error (some servers answer `200` so): the error,
    /// in the server's words.
    fn no_error(&self, answer: &Json, body: &[u8], what: &str) -> Result<()> {
        let Some(error) = answer.get("error").filter(|e| e.is_object()) else {
            return Ok(());
        };
        let code = error["code"].as_u64().map_or(200, |c| c as u16);
        Err(ErrorKind::Unexpected(format!(
            "the REST catalog at {} answered {what} with success and an error: {}",
            self.base,
            server_message(code, body)
        ))
        .into())
    }

    /// Where the table's files are read and written (the table's own `config` included,
    /// once it is loaded).
    pub(crate) fn storage(&self) -> &StorageOptions {
        &self.storage
    }

    /// Whether the storage's vended credentials expire within [`RENEW_BEFORE`]: the table is
    /// then loaded again for new ones before files are written with them.
    pub(crate) fn storage_due(&self) -> bool {
        let soon = super::now_ms() + RENEW_BEFORE.as_millis() as i64;
        self.storage_expires_ms.is_some_and(|at| at <= soon)
    }

    /// The address of `segments` under `/v1/{prefix}`.
    fn url(&self, segments: &[&str]) -> String {
        let mut url = self.base.clone();
        for s in self
            .prefix
            .iter()
            .map(String::as_str)
            .chain(segments.iter().copied())
        {
            url.push('/');
            url.extend(url::form_urlencoded::byte_serialize(s.as_bytes()).map(|p| {
                // A path segment: a space is %20, not the form's `+`.
                if p == "+" { "%20" } else { p }
            }));
        }
        url
    }

    /// A namespace in a path: its levels joined by the unit separator.
    fn namespace_segment(namespace: &str) -> String {
        namespace.split('.').collect::<Vec<_>>().join("\u{1f}")
    }

    fn table_url(&self, namespace: &str, table: &str) -> String {
        let ns = Self::namespace_segment(namespace);
        self.url(&["namespaces", &ns, "tables", table])
    }

    /// The table, `None` when the catalog has none of that name.
    pub(crate) async fn load(&mut self, namespace: &str, table: &str) -> Result<Option<Loaded>> {
        let url = self.table_url(namespace, table);
        let what = format!("loading table {namespace}.{table}");
        match self.send(reqwest::Method::GET, &url, None).await? {
            Answer::Got(200, body) => Ok(Some(self.loaded(&body, &what, Loads::Table)?)),
            Answer::Got(404, _) => Ok(None),
            Answer::Got(status, body) => Err(self.refused(&what, status, &body)),
            Answer::Lost(e) => Err(unreachable_server(&self.base, &what, &e)),
        }
    }

    /// A load result (`LoadTableResult`): the metadata, where it is, and the table's storage
    /// configuration (merged into [`RestCatalog::storage`]).
    fn loaded(&mut self, body: &[u8], what: &str, kind: Loads) -> Result<Loaded> {
        let result: Json = parse(body, what)?;
        self.no_error(&result, body, what)?;
        let location = result["metadata-location"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let metadata = TableMetadata::parse(
            &serde_json::to_vec(&result["metadata"]).unwrap_or_default(),
        )
        .map_err(|e| {
            Error::from(ErrorKind::Unexpected(format!(
                "the REST catalog at {} answered {what} with metadata pgarrow cannot read: {e}",
                self.base
            )))
        })?;
        let mut properties: Vec<(String, String)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(config) = result["config"].as_object() {
            properties.extend(
                config
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), text(v)?))),
            );
        }
        // Vended credentials (`storage-credentials`: prefixes, each with its own config).
        for c in result["storage-credentials"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let applies = c["prefix"]
                .as_str()
                .is_some_and(|p| metadata.location.starts_with(p));
            if applies {
                let config = c["config"].as_object().into_iter().flatten();
                properties.extend(config.filter_map(|(k, v)| Some((k.clone(), text(v)?))));
            }
        }
        // A commit's answer carries no storage configuration: the table's, from its load,
        // still holds (vended credentials and when they expire among it).
        if kind == Loads::Table {
            self.storage = with_storage(&self.user_storage, properties.iter().map(|(k, v)| (k, v)));
            self.storage_expires_ms =
                expiry_ms(properties.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        Ok(Loaded { metadata, location })
    }

    /// The location the server gives a new table `namespace.table` (a staged create, which
    /// makes nothing), the namespace made first when missing.
    pub(crate) async fn new_location(&mut self, namespace: &str, table: &str) -> Result<String> {
        self.ensure_namespace(namespace).await?;
        let ns = Self::namespace_segment(namespace);
        let url = self.url(&["namespaces", &ns, "tables"]);
        let body = json!({
            "name": table,
            "stage-create": true,
            "schema": {"type": "struct", "schema-id": 0, "fields": []},
        });
        let what = format!("staging table {namespace}.{table}");
        let answer = self
            .expect(reqwest::Method::POST, &url, Some(&body), &[200])
            .await
            .map_err(|e| e.context(what.clone()))?;
        let loaded = self.loaded(&answer, &what, Loads::Table)?;
        Ok(loaded.metadata.location.trim_end_matches('/').to_owned())
    }

    /// Makes the namespace when the catalog has none of that name (its parents first).
    pub(crate) async fn ensure_namespace(&mut self, namespace: &str) -> Result<()> {
        let levels: Vec<&str> = namespace.split('.').collect();
        for depth in 1..=levels.len() {
            let ns = &levels[..depth];
            let url = self.url(&["namespaces", &ns.join("\u{1f}")]);
            let what = format!("namespace {}", ns.join("."));
            match self.send(reqwest::Method::HEAD, &url, None).await? {
                Answer::Got(200 | 204, _) => continue,
                Answer::Got(404, _) => {}
                // A server without HEAD: the create below says whether it exists.
                Answer::Got(405 | 400, _) => {}
                Answer::Got(status, body) => return Err(self.refused(&what, status, &body)),
                Answer::Lost(e) => return Err(unreachable_server(&self.base, &what, &e)),
            }
            let body = json!({"namespace": ns, "properties": {}});
            match self
                .send(
                    reqwest::Method::POST,
                    &self.url(&["namespaces"]),
                    Some(&body),
                )
                .await?
            {
                Answer::Got(200 | 204 | 409, _) => {}
                Answer::Got(status, body) => {
                    return Err(self.refused(&format!("making {what}"), status, &body));
                }
                Answer::Lost(e) => return Err(unreachable_server(&self.base, &what, &e)),
            }
        }
        Ok(())
    }

    /// Makes the table of `metadata` (its first snapshot in it), in one commit under
    /// `assert-create`: readers see no table, then the whole table.
    pub(crate) async fn create(
        &mut self,
        namespace: &str,
        table: &str,
        metadata: TableMetadata,
    ) -> Result<Committed> {
        self.ensure_namespace(namespace).await?;
        let updates = creation(&metadata);
        self.send_commit(
            namespace,
            table,
            None,
            &[TableRequirement::AssertCreate],
            &updates,
        )
        .await
    }

    /// Sends `updates` under `requirements` to the table read as `base`.
    pub(crate) async fn commit(
        &mut self,
        namespace: &str,
        table: &str,
        base: &Loaded,
        requirements: &[TableRequirement],
        updates: &[TableUpdate],
    ) -> Result<Committed> {
        self.send_commit(namespace, table, Some(base), requirements, updates)
            .await
    }

    async fn send_commit(
        &mut self,
        namespace: &str,
        table: &str,
        base: Option<&Loaded>,
        requirements: &[TableRequirement],
        updates: &[TableUpdate],
    ) -> Result<Committed> {
        let url = self.table_url(namespace, table);
        let body = json!({
            "identifier": {"namespace": namespace.split('.').collect::<Vec<_>>(), "name": table},
            "requirements": requirements,
            "updates": updates,
        });
        let what = format!("committing to table {namespace}.{table}");
        // One key for every sending of this commit: a server that takes keys applies it once.
        let key = crate::common::new_uuid();
        let mut unknown = 0;
        loop {
            let sent = self
                .send_keyed(reqwest::Method::POST, &url, Some(&body), Some(&key))
                .await?;
            let why = match sent {
                Answer::Got(200, answer) => {
                    return Ok(Committed::Done(Box::new(self.loaded(
                        &answer,
                        &what,
                        Loads::Commit,
                    )?)));
                }
                Answer::Got(409, answer) => {
                    return Ok(Committed::Conflict(server_message(409, &answer)));
                }
                // Not found: the table was dropped (an update), or its namespace (a create).
                Answer::Got(404, answer) if base.is_some() => {
                    return Ok(Committed::Conflict(server_message(404, &answer)));
                }
                Answer::Got(status @ (500..=599), answer) => server_message(status, &answer),
                Answer::Got(status, answer) => return Err(self.refused(&what, status, &answer)),
                Answer::Lost(e) => e,
            };
            // The server may have applied it: the table says, if it can be read.
            let now = match self.load(namespace, table).await {
                Ok(now) => now,
                Err(e) => return Ok(Committed::Unknown(format!("{why}; then {e}"))),
            };
            if let Some(now) = now.filter(|n| landed(n, base, updates)) {
                log::info!(
                    "the REST catalog did not answer a commit to {namespace}.{table} ({why}), \
                     which the table shows landed"
                );
                return Ok(Committed::Done(Box::new(now)));
            }
            unknown += 1;
            if unknown > UNKNOWN_TRIES {
                return Err(ErrorKind::Unexpected(format!(
                    "the REST catalog at {} did not answer {what} {unknown} times, the last: \
                     {why}; the table shows it did not land",
                    self.base
                ))
                .into());
            }
            log::warn!(
                "the REST catalog did not answer a commit to {namespace}.{table} ({why}); the \
                 table shows it did not land: sending it again"
            );
            tokio::time::sleep(Duration::from_millis(200 << unknown.min(5))).await;
        }
    }

    /// Sends every change in one multi-table transaction (`POST /v1/{prefix}/transactions/commit`):
    /// all land or none. `Err(why)` inside when the server offers no such transaction, or
    /// makes no new table inside one (it answers that the table does not exist).
    pub(crate) async fn commit_all(&mut self, changes: &[TableChange<'_>]) -> Result<Together> {
        if !self.transactions {
            return Ok(Err(format!(
                "the REST catalog at {} lists no multi-table transactions among its endpoints",
                self.base
            )));
        }
        let mut parts = Vec::with_capacity(changes.len());
        // Each table's updates, and the table it was read as (none: new).
        let mut judged: Vec<(Option<&Loaded>, Vec<TableUpdate>)> = Vec::new();
        for c in changes {
            let (requirements, updates, base) = match &c.change {
                Change::Create(metadata) => {
                    self.ensure_namespace(c.namespace).await?;
                    (
                        vec![TableRequirement::AssertCreate],
                        creation(metadata),
                        None,
                    )
                }
                Change::Update {
                    base,
                    requirements,
                    updates,
                } => (requirements.clone(), updates.clone(), Some(*base)),
            };
            parts.push(json!({
                "identifier": {
                    "namespace": c.namespace.split('.').collect::<Vec<_>>(),
                    "name": c.table,
                },
                "requirements": requirements,
                "updates": updates,
            }));
            judged.push((base, updates));
        }
        let creates = judged.iter().any(|(base, _)| base.is_none());
        let body = json!({ "table-changes": parts });
        let url = self.url(&["transactions", "commit"]);
        let names: Vec<String> = changes.iter().map(TableChange::name).collect();
        let what = format!("a transaction committing to tables {}", names.join(", "));
        let key = crate::common::new_uuid();
        let mut unknown = 0;
        loop {
            let sent = self
                .send_keyed(reqwest::Method::POST, &url, Some(&body), Some(&key))
                .await?;
            let why = match sent {
                Answer::Got(200 | 204, answer) => {
                    if let Ok(said) = serde_json::from_slice::<Json>(&answer) {
                        self.no_error(&said, &answer, &what)?;
                    }
                    return self.after_all(changes, &judged).await.map(Ok);
                }
                Answer::Got(409, answer) => {
                    return Ok(Ok(Committed::Conflict(server_message(409, &answer))));
                }
                // A table to make that the server says does not exist: it makes tables only
                // by a commit of their own (SeaweedFS).
                Answer::Got(404, answer) if creates => {
                    return Ok(Err(format!(
                        "the REST catalog at {} makes no new table inside a multi-table \
                         transaction ({})",
                        self.base,
                        server_message(404, &answer)
                    )));
                }
                Answer::Got(404, answer)
                    if error_type(&answer).as_deref() == Some("NoSuchTableException") =>
                {
                    return Ok(Ok(Committed::Conflict(server_message(404, &answer))));
                }
                // No such endpoint after all.
                Answer::Got(status @ (404 | 405 | 501), answer) => {
                    return Ok(Err(format!(
                        "the REST catalog at {} takes no multi-table transaction ({})",
                        self.base,
                        server_message(status, &answer)
                    )));
                }
                Answer::Got(status @ (500..=599), answer) => server_message(status, &answer),
                Answer::Got(status, answer) => return Err(self.refused(&what, status, &answer)),
                Answer::Lost(e) => e,
            };
            // The server may have applied it: the tables say, if they can be read. A
            // transaction lands whole, so one table showing it is enough to know; all are read
            // for what the caller reports.
            let mut now = Vec::with_capacity(changes.len());
            for c in changes {
                match self.load(c.namespace, c.table).await {
                    Ok(table) => now.push(table),
                    Err(e) => return Ok(Ok(Committed::Unknown(format!("{why}; then {e}")))),
                }
            }
            let shown: Vec<bool> = now
                .iter()
                .zip(&judged)
                .map(|(n, (base, updates))| n.as_ref().is_some_and(|n| landed(n, *base, updates)))
                .collect();
            if shown.iter().all(|&s| s) {
                log::info!(
                    "the REST catalog did not answer {what} ({why}), which the tables show landed"
                );
                return Ok(Ok(Committed::Done(now.into_iter().flatten().collect())));
            }
            if shown.iter().any(|&s| s) {
                return Err(ErrorKind::Unexpected(format!(
                    "the REST catalog at {} did not answer {what} ({why}), and the tables show \
                     it landed on some of them only: the server did not apply it as one \
                     transaction",
                    self.base
                ))
                .into());
            }
            unknown += 1;
            if unknown > UNKNOWN_TRIES {
                return Err(ErrorKind::Unexpected(format!(
                    "the REST catalog at {} did not answer {what} {unknown} times, the last:                      {why}; the tables show it did not land",
                    self.base
                ))
                .into());
            }
            log::warn!(
                "the REST catalog did not answer {what} ({why}); the tables show it did not \
                 land: sending it again"
            );
            tokio::time::sleep(Duration::from_millis(200 << unknown.min(5))).await;
        }
    }

    /// The tables after a transaction the server said it applied (its answer carries none of
    /// them), each checked to hold it.
    async fn after_all(
        &mut self,
        changes: &[TableChange<'_>],
        judged: &[(Option<&Loaded>, Vec<TableUpdate>)],
    ) -> Result<Committed<Vec<Loaded>>> {
        let mut out = Vec::with_capacity(changes.len());
        for (c, (base, updates)) in changes.iter().zip(judged) {
            let read = match self.load(c.namespace, c.table).await {
                Ok(Some(table)) => table,
                Ok(None) => {
                    return Ok(Committed::Unknown(format!(
                        "the transaction landed, and then table {} was gone",
                        c.name()
                    )));
                }
                // Landed: its files stay, whatever reading the tables again says.
                Err(e) => {
                    return Ok(Committed::Unknown(format!(
                        "the transaction landed, and then reading table {} failed: {e}",
                        c.name()
                    )));
                }
            };
            out.push((landed(&read, *base, updates), read));
        }
        let held = out.iter().filter(|(shown, _)| *shown).count();
        if held == 0 {
            return Err(ErrorKind::Unexpected(format!(
                "the REST catalog at {} answered that a transaction committing to tables {} \
                 landed, and none of them holds it: nothing is taken as committed",
                self.base,
                changes
                    .iter()
                    .map(TableChange::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
        if held < out.len() {
            // Some tables hold it: their files must stay.
            return Ok(Committed::Unknown(format!(
                "the transaction landed on {held} of its {} tables only",
                out.len()
            )));
        }
        Ok(Committed::Done(out.into_iter().map(|(_, t)| t).collect()))
    }

    /// Sends a request, the token renewed when due and once more on a `401`.
    async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Json>,
    ) -> Result<Answer> {
        self.send_keyed(method, url, body, None).await
    }

    /// [`RestCatalog::send`] under an idempotency key (sent when the server takes them).
    async fn send_keyed(
        &mut self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Json>,
        key: Option<&str>,
    ) -> Result<Answer> {
        let mut renewed = false;
        loop {
            let token = self.token(false).await?;
            let mut request = self.http.request(method.clone(), url);
            for (k, v) in &self.headers {
                request = request.header(k, v);
            }
            if let Some(key) = key.filter(|_| self.idempotent) {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            if let Some(b) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(serde_json::to_vec(b).unwrap_or_default());
            }
            let sent = match &self.auth {
                Auth::SigV4(signer) => {
                    let mut built = request.build().map_err(|e| {
                        Error::from(ErrorKind::Internal(format!(
                            "building a REST catalog request: {e}"
                        )))
                    })?;
                    signer.sign(&mut built, std::time::SystemTime::now())?;
                    self.http.execute(built).await
                }
                _ => request.send().await,
            };
            let response = match sent {
                Ok(r) => r,
                Err(e) => return Ok(Answer::Lost(describe(&e))),
            };
            let status = response.status().as_u16();
            let bytes = match response.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => return Ok(Answer::Lost(describe(&e))),
            };
            if status == 401 && !renewed && matches!(self.auth, Auth::Client { .. }) {
                // Not applied: a refused token. A fresh one, once.
                renewed = true;
                self.token(true).await?;
                continue;
            }
            return Ok(Answer::Got(status, bytes));
        }
    }

    /// Sends a request and returns the body of an answer of one of `ok`, else the error.
    async fn expect(
        &mut self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Json>,
        ok: &[u16],
    ) -> Result<Vec<u8>> {
        let what = format!("{method} {}", url.strip_prefix(&self.base).unwrap_or(url));
        match self.send(method, url, body).await? {
            Answer::Got(status, body) if ok.contains(&status) => Ok(body),
            Answer::Got(status, body) => Err(self.refused(&what, status, &body)),
            Answer::Lost(e) => Err(unreachable_server(&self.base, &what, &e)),
        }
    }

    /// The bearer token to send: OAuth2's, fetched or renewed when due (`force`: now).
    async fn token(&mut self, force: bool) -> Result<Option<String>> {
        let (server, form, token) = match &mut self.auth {
            Auth::None | Auth::SigV4(_) => return Ok(None),
            Auth::Bearer(t) => return Ok(Some(t.clone())),
            Auth::Client {
                server,
                form,
                token,
            } => (server, form, token),
        };
        if !force
            && let Some((t, expires)) = token
            && expires.is_none_or(|e| Instant::now() + RENEW_BEFORE < e)
        {
            return Ok(Some(t.clone()));
        }
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        let sent = Instant::now();
        let response = self
            .http
            .post(server.as_str())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(encoded)
            .send()
            .await
            .map_err(|e| unreachable_server(server, "fetching an OAuth2 token", &describe(&e)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| unreachable_server(server, "fetching an OAuth2 token", &describe(&e)))?;
        if status != 200 {
            // The token endpoint's answer names the fault; the credential is never shown.
            return Err(usage(format!(
                "the OAuth2 token endpoint {server} refused the catalog's credential: {}",
                server_message(status, &body)
            )));
        }
        let answer: Json = parse(&body, "the OAuth2 token answer")?;
        let Some(access) = answer["access_token"].as_str() else {
            return Err(ErrorKind::Unexpected(format!(
                "the OAuth2 token endpoint {server} answered without an access_token"
            ))
            .into());
        };
        let expires = answer["expires_in"]
            .as_u64()
            .or_else(|| answer["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .map(|s| sent + Duration::from_secs(s));
        *token = Some((access.to_owned(), expires));
        Ok(Some(access.to_owned()))
    }

    /// The error of an answer `status` to `what`, naming the server's own words.
    fn refused(&self, what: &str, status: u16, body: &[u8]) -> Error {
        let said = server_message(status, body);
        let text = format!("the REST catalog at {} refused {what}: {said}", self.base);
        match status {
            400 | 401 | 403 | 404 | 406 => usage(text),
            429 | 502 | 503 | 504 => ErrorKind::Unavailable(text).into(),
            _ => ErrorKind::Unexpected(text).into(),
        }
    }
}

/// Whether the table `now` shows the commit of `updates` onto `base` landed: it holds every
/// snapshot they add and none they remove; a commit of neither landed when the table moved
/// on from `base` with its schema and spec as they set them.
fn landed(now: &Loaded, base: Option<&Loaded>, updates: &[TableUpdate]) -> bool {
    let mut judged = false;
    for u in updates {
        match u {
            TableUpdate::AddSnapshot { snapshot } => {
                judged = true;
                if now.metadata.snapshot(snapshot.snapshot_id).is_none() {
                    return false;
                }
            }
            TableUpdate::RemoveSnapshots { snapshot_ids } => {
                judged = true;
                if snapshot_ids
                    .iter()
                    .any(|id| now.metadata.snapshot(*id).is_some())
                {
                    return false;
                }
            }
            _ => {}
        }
    }
    if judged {
        return true;
    }
    let moved = base.is_none_or(|b| b.location != now.location);
    let schema = updates.iter().rev().find_map(|u| match u {
        TableUpdate::AddSchema { schema, .. } => Some(&schema.fields),
        _ => None,
    });
    moved
        && schema.is_none_or(|fields| {
            now.metadata
                .current_schema()
                .is_some_and(|s| &s.fields == fields)
        })
}

/// The updates that make a new table of `metadata` (after `assert-create`), as Iceberg's own
/// clients send them for a table created in a transaction.
fn creation(metadata: &TableMetadata) -> Vec<TableUpdate> {
    let mut updates = vec![
        TableUpdate::AssignUuid {
            uuid: metadata
                .table_uuid
                .clone()
                .unwrap_or_else(crate::common::new_uuid),
        },
        TableUpdate::UpgradeFormatVersion {
            format_version: metadata.format_version,
        },
    ];
    for schema in &metadata.schemas {
        updates.push(TableUpdate::AddSchema {
            schema: schema.clone(),
            last_column_id: metadata.last_column_id,
        });
    }
    // `-1`: the one added last, as Iceberg's clients say it (a server numbers what it adds
    // itself, and may start a new table from a placeholder schema 0 of no columns).
    updates.push(TableUpdate::SetCurrentSchema { schema_id: -1 });
    for spec in &metadata.partition_specs {
        updates.push(TableUpdate::AddSpec { spec: spec.clone() });
    }
    updates.push(TableUpdate::SetDefaultSpec { spec_id: -1 });
    for order in metadata
        .sort_orders
        .as_ref()
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        updates.push(TableUpdate::AddSortOrder {
            sort_order: order.clone(),
        });
    }
    updates.push(TableUpdate::SetDefaultSortOrder { sort_order_id: -1 });
    updates.push(TableUpdate::SetLocation {
        location: metadata.location.clone(),
    });
    let properties: BTreeMap<String, String> = metadata
        .properties
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
        .collect();
    if !properties.is_empty() {
        updates.push(TableUpdate::SetProperties {
            updates: properties,
        });
    }
    for snapshot in &metadata.snapshots {
        updates.push(TableUpdate::AddSnapshot {
            snapshot: snapshot.clone(),
        });
    }
    for (name, r) in &metadata.refs {
        if let Some(id) = r.get("snapshot-id").and_then(Json::as_i64) {
            updates.push(TableUpdate::SetSnapshotRef {
                ref_name: name.clone(),
                snapshot_id: id,
                kind: r["type"].as_str().unwrap_or("branch").to_owned(),
            });
        }
    }
    updates
}

/// When the soonest credential of `properties` expires: the `*-expires-at-ms` properties of
/// vended credentials (`s3.session-token-expires-at-ms`, `adls.sas-token-expires-at-ms.ACCOUNT`,
/// `gcs.oauth2.token-expires-at`), in milliseconds since the epoch.
fn expiry_ms<'a>(properties: impl Iterator<Item = (&'a str, &'a str)>) -> Option<i64> {
    properties
        .filter(|(k, _)| k.contains("expires-at"))
        .filter_map(|(_, v)| v.trim().parse::<i64>().ok())
        .min()
}

/// `user` with the storage of the catalog's `properties` added (the user's own win: what the
/// user set is what the user meant).
fn with_storage<'a>(
    user: &StorageOptions,
    properties: impl Iterator<Item = (&'a String, &'a String)>,
) -> StorageOptions {
    let mut out = StorageOptions::new();
    for (k, v) in storage_options(properties.map(|(k, v)| (k.as_str(), v.as_str()))) {
        out = out.with_option(k, v);
    }
    for k in user.keys().map(str::to_owned).collect::<Vec<_>>() {
        if let Some(v) = user.get(&k) {
            out = out.with_option(k.clone(), v.to_owned());
        }
    }
    out
}

/// The HTTP client: TLS with the system's roots, or the `ssl.cabundle` given.
fn client(options: &RestCatalogOptions) -> Result<reqwest::Client> {
    static CRYPTO: std::sync::Once = std::sync::Once::new();
    CRYPTO.call_once(|| {
        // Another library of the process may have installed one first: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("pgarrow/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = options.get("ssl.cabundle") {
        let pem = std::fs::read(path).map_err(|e| usage(format!("ssl.cabundle {path}: {e}")))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| usage(format!("ssl.cabundle {path}: not PEM certificates: {e}")))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| usage(format!("the REST catalog's HTTP client: {}", describe(&e))))
}

fn usage(text: String) -> Error {
    ErrorKind::Usage(text).into()
}

fn unreachable_server(base: &str, what: &str, why: &str) -> Error {
    ErrorKind::Unavailable(format!(
        "the REST catalog at {base} did not answer {what}: {why}"
    ))
    .into()
}

/// An HTTP error with its causes (reqwest's own message names only the outermost).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The server's words for an answer `status`: the specification's error model (`error`:
/// `message`, `type`, `code`), an OAuth2 error (`error`, `error_description`), else the body.
fn server_message(status: u16, body: &[u8]) -> String {
    let json: Option<Json> = serde_json::from_slice(body).ok();
    let said = json.as_ref().and_then(|j| match &j["error"] {
        Json::Object(e) => Some(format!(
            "{}{}",
            e.get("type")
                .and_then(Json::as_str)
                .map(|t| format!("{t}: "))
                .unwrap_or_default(),
            e.get("message").and_then(Json::as_str).unwrap_or("")
        )),
        Json::String(code) => Some(match j["error_description"].as_str() {
            Some(d) => format!("{code}: {d}"),
            None => code.clone(),
        }),
        _ => None,
    });
    let said = said.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        match text.char_indices().nth(300) {
            Some((cut, _)) => format!("{}...", &text[..cut]),
            None => text.to_owned(),
        }
    });
    format!("HTTP {status}: {said}")
}

/// The `type` of an error answer (`NoSuchTableException`, ...).
fn error_type(body: &[u8]) -> Option<String> {
    let json: Json = serde_json::from_slice(body).ok()?;
    json["error"]["type"].as_str().map(str::to_owned)
}

fn parse(body: &[u8], what: &str) -> Result<Json> {
    serde_json::from_slice(body).map_err(|e| {
        Error::from(ErrorKind::Unexpected(format!(
            "the REST catalog answered {what} with what is not JSON: {e}"
        )))
    })
}

/// A property's value as text (the specification says strings; some servers send numbers
/// and booleans).
fn text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_properties_map_to_object_store_options() {
        let props = [
            ("s3.endpoint", "http://127.0.0.1:9000"),
            ("s3.access-key-id", "k"),
            ("s3.secret-access-key", "s"),
            ("s3.path-style-access", "true"),
            ("s3.region", "us-east-1"),
            ("credential", "never-storage"),
        ];
        let got = storage_options(props);
        assert!(got.contains(&("aws_endpoint".into(), "http://127.0.0.1:9000".into())));
        assert!(got.contains(&("aws_allow_http".into(), "true".into())));
        assert!(got.contains(&("aws_virtual_hosted_style_request".into(), "false".into())));
        assert!(got.contains(&("aws_region".into(), "us-east-1".into())));
        assert!(!got.iter().any(|(_, v)| v == "never-storage"));
    }

    #[test]
    fn pyiceberg_yaml_gives_a_catalog_s_properties() {
        let text = "
catalog:
  other:
    uri: http://elsewhere
  lake:   # the one
    uri: 'http://127.0.0.1:8181'
    credential: \"id:se#cret\"
    s3.endpoint: http://127.0.0.1:9000
    header.X-Tenant: acme
    ssl:
      cabundle: /etc/ca.pem
";
        let got = yaml_catalog(text, "lake").unwrap();
        assert_eq!(
            got,
            [
                ("uri", "http://127.0.0.1:8181"),
                ("credential", "id:se#cret"),
                ("s3.endpoint", "http://127.0.0.1:9000"),
                ("header.X-Tenant", "acme"),
                ("ssl.cabundle", "/etc/ca.pem"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(yaml_catalog("catalog:\n  lake\n", "lake").is_err());
    }

    #[test]
    fn vended_credentials_expire_at_their_soonest() {
        let props = [
            ("s3.session-token-expires-at-ms", "1795000000000"),
            (
                "adls.sas-token-expires-at-ms.acct.dfs.core.windows.net",
                "1794000000000",
            ),
            ("s3.endpoint", "http://h"),
        ];
        assert_eq!(expiry_ms(props.into_iter()), Some(1_794_000_000_000));
        assert_eq!(expiry_ms([("s3.region", "x")].into_iter()), None);
    }

    #[test]
    fn debug_shows_no_secret() {
        let o = RestCatalogOptions::new("http://h/")
            .with_property("credential", "id:very-secret")
            .with_property("token", "tok-secret");
        let shown = format!("{o:?}");
        assert!(shown.contains("credential") && shown.contains("http://h/"));
        assert!(
            !shown.contains("very-secret") && !shown.contains("tok-secret"),
            "{shown}"
        );
    }

    #[test]
    fn error_bodies_name_the_server_words() {
        let spec = br#"{"error":{"message":"Table does not exist","type":"NoSuchTableException","code":404}}"#;
        assert_eq!(
            server_message(404, spec),
            "HTTP 404: NoSuchTableException: Table does not exist"
        );
        let oauth = br#"{"error":"invalid_client","error_description":"bad secret"}"#;
        assert_eq!(
            server_message(401, oauth),
            "HTTP 401: invalid_client: bad secret"
        );
        assert_eq!(server_message(502, b"bad gateway"), "HTTP 502: bad gateway");
    }
}
