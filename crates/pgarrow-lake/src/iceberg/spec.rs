//! Iceberg's table metadata as types (format versions 2 and 3; a version 1 file parses for the
//! refusal that names it), and every change to it as the REST catalog specification names
//! them: updates (`add-snapshot`, `set-snapshot-ref`, `add-schema`, ...) applied under
//! requirements (`assert-ref-snapshot-id`, `assert-current-schema-id`, `assert-table-uuid`,
//! ...). A catalog takes them ([`super::catalog::Catalog`]): the SQL catalog applies them
//! here and swaps the table's metadata file; a REST catalog sends them.
//!
//! What another writer put in the metadata that these types do not name (statistics files,
//! encryption keys, a newer field) is kept in each type's `other` map and written back as it
//! was: a table survives pgarrow's commit with everything pgarrow did not change. The only
//! untyped JSON here is that map, snapshot summaries and property values (strings by the
//! specification, kept as whatever a writer wrote), defaults (`initial-default`, whose JSON
//! form depends on the field's type), and the sort orders pgarrow never changes.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value as Json, json};

/// What a type does not name, kept as it was.
pub(crate) type Other = Map<String, Json>;

/// A table's metadata file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct TableMetadata {
    pub(crate) format_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) table_uuid: Option<String>,
    pub(crate) location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_sequence_number: Option<i64>,
    #[serde(default)]
    pub(crate) last_updated_ms: i64,
    #[serde(default)]
    pub(crate) last_column_id: i64,
    #[serde(default)]
    pub(crate) schemas: Vec<Schema>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) current_schema_id: Option<i64>,
    #[serde(default)]
    pub(crate) partition_specs: Vec<PartitionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default_spec_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_partition_id: Option<i64>,
    #[serde(default)]
    pub(crate) properties: Map<String, Json>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "signed_opt"
    )]
    pub(crate) current_snapshot_id: Option<i64>,
    #[serde(default)]
    pub(crate) snapshots: Vec<Snapshot>,
    #[serde(default)]
    pub(crate) snapshot_log: Vec<SnapshotLogEntry>,
    #[serde(default)]
    pub(crate) metadata_log: Vec<MetadataLogEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sort_orders: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default_sort_order_id: Option<i64>,
    #[serde(default)]
    pub(crate) refs: Map<String, Json>,
    #[serde(flatten)]
    pub(crate) other: Other,
    /// Snapshot IDs the file spells as unsigned numbers past a long's range (as some writers
    /// print them), held as the long of the same 64 bits: written back as they were spelled.
    #[serde(skip)]
    pub(crate) unsigned_ids: std::collections::BTreeSet<i64>,
}

/// A schema: the table's columns, each a field of an ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Schema {
    #[serde(default)]
    pub(crate) schema_id: i64,
    pub(crate) fields: Vec<NestedField>,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// A field of a schema or a struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct NestedField {
    pub(crate) id: i64,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) required: bool,
    #[serde(rename = "type")]
    pub(crate) ty: Type,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// A field's type: a primitive by its name (`long`, `decimal(10, 2)`, `timestamptz`), or a
/// struct, list or map of fields with IDs of their own.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Type {
    Primitive(String),
    Struct(Vec<NestedField>),
    List {
        element_id: i64,
        element_required: bool,
        element: Box<Type>,
    },
    Map {
        key_id: i64,
        key: Box<Type>,
        value_id: i64,
        value_required: bool,
        value: Box<Type>,
    },
}

/// A snapshot: the table's files at one commit (its manifest list), with its summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Snapshot {
    #[serde(deserialize_with = "signed")]
    pub(crate) snapshot_id: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "signed_opt"
    )]
    pub(crate) parent_snapshot_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sequence_number: Option<i64>,
    #[serde(default)]
    pub(crate) timestamp_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) manifest_list: Option<String>,
    #[serde(default)]
    pub(crate) summary: Map<String, Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) schema_id: Option<i64>,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// An entry of the snapshot log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SnapshotLogEntry {
    #[serde(deserialize_with = "signed")]
    pub(crate) snapshot_id: i64,
    pub(crate) timestamp_ms: i64,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// An entry of the metadata log: an earlier metadata file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct MetadataLogEntry {
    pub(crate) metadata_file: String,
    pub(crate) timestamp_ms: i64,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// A partition spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PartitionSpec {
    #[serde(default)]
    pub(crate) spec_id: i64,
    #[serde(default)]
    pub(crate) fields: Vec<PartitionSpecField>,
    #[serde(flatten)]
    pub(crate) other: Other,
}

/// A field of a partition spec: a transform of a source column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PartitionSpecField {
    #[serde(default = "no_id")]
    pub(crate) source_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) field_id: Option<i64>,
    pub(crate) name: String,
    pub(crate) transform: String,
    #[serde(flatten)]
    pub(crate) other: Other,
}

fn no_id() -> i64 {
    -1
}

/// A change to a table's metadata, as the REST catalog specification names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub(crate) enum TableUpdate {
    /// A schema; `last-column-id` rises to the given one.
    AddSchema {
        schema: Schema,
        #[serde(rename = "last-column-id")]
        last_column_id: i64,
    },
    /// The current schema (`-1`: the one added last in this change).
    SetCurrentSchema {
        #[serde(rename = "schema-id")]
        schema_id: i64,
    },
    /// A partition spec.
    AddSpec { spec: PartitionSpec },
    /// The default spec.
    SetDefaultSpec {
        #[serde(rename = "spec-id")]
        spec_id: i64,
    },
    /// A snapshot.
    AddSnapshot { snapshot: Snapshot },
    /// A branch points at a snapshot (`main`: the table's current snapshot).
    SetSnapshotRef {
        #[serde(rename = "ref-name")]
        ref_name: String,
        #[serde(rename = "snapshot-id")]
        snapshot_id: i64,
        #[serde(rename = "type")]
        kind: String,
    },
    /// Snapshots dropped (expiry).
    RemoveSnapshots {
        #[serde(rename = "snapshot-ids")]
        snapshot_ids: Vec<i64>,
    },
    /// The table's UUID (a new table's, in the commit that creates it).
    AssignUuid { uuid: String },
    /// The format version (a new table's).
    UpgradeFormatVersion {
        #[serde(rename = "format-version")]
        format_version: i64,
    },
    /// A sort order (a new table's; pgarrow changes none).
    AddSortOrder {
        #[serde(rename = "sort-order")]
        sort_order: Json,
    },
    /// The default sort order.
    SetDefaultSortOrder {
        #[serde(rename = "sort-order-id")]
        sort_order_id: i64,
    },
    /// Where the table's files go.
    SetLocation { location: String },
    /// Table properties set.
    SetProperties {
        updates: std::collections::BTreeMap<String, String>,
    },
}

/// What must hold of the table for a change to apply, as the REST catalog specification
/// names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[allow(clippy::enum_variant_names)] // the REST catalog specification's names
pub(crate) enum TableRequirement {
    /// The table does not exist yet (a REST catalog's create sends it; the SQL catalog's
    /// insert holds it by itself).
    AssertCreate,
    /// It is the table read (not one dropped and made again).
    AssertTableUuid { uuid: String },
    /// The branch is at this snapshot (`None`: it does not exist).
    AssertRefSnapshotId {
        #[serde(rename = "ref")]
        name: String,
        #[serde(rename = "snapshot-id")]
        snapshot_id: Option<i64>,
    },
    /// The current schema is this one.
    AssertCurrentSchemaId {
        #[serde(rename = "current-schema-id")]
        current_schema_id: i64,
    },
    /// The default spec is this one.
    AssertDefaultSpecId {
        #[serde(rename = "default-spec-id")]
        default_spec_id: i64,
    },
}

impl TableMetadata {
    /// Parses a metadata file's JSON.
    ///
    /// # Errors
    /// What is not Iceberg table metadata, said by `serde_json` (the field and place).
    pub(crate) fn parse(bytes: &[u8]) -> std::result::Result<TableMetadata, serde_json::Error> {
        let mut json: Json = serde_json::from_slice(bytes)?;
        let mut unsigned = std::collections::BTreeSet::new();
        snapshot_ids(&mut json, &mut |id| {
            if id.is_u64() && !id.is_i64() {
                unsigned.extend(signed_value(id));
            }
        });
        let mut m: TableMetadata = serde_json::from_value(json)?;
        m.unsigned_ids = unsigned;
        Ok(m)
    }

    /// The metadata file's JSON (a snapshot ID spelled unsigned when read spelled so again).
    pub(crate) fn to_json_bytes(&self) -> Vec<u8> {
        // Types of strings, numbers and maps with string keys: their JSON cannot fail.
        if self.unsigned_ids.is_empty() {
            return serde_json::to_vec_pretty(self).unwrap_or_default();
        }
        let mut json = serde_json::to_value(self).unwrap_or_default();
        snapshot_ids(&mut json, &mut |id| {
            if let Some(long) = id.as_i64().filter(|l| self.unsigned_ids.contains(l)) {
                *id = Json::from(long as u64);
            }
        });
        serde_json::to_vec_pretty(&json).unwrap_or_default()
    }

    /// The current snapshot's ID (none for a table without snapshots, or `-1`).
    pub(crate) fn current_snapshot_id(&self) -> Option<i64> {
        self.current_snapshot_id.filter(|id| *id != -1)
    }

    /// Snapshot `id`.
    pub(crate) fn snapshot(&self, id: i64) -> Option<&Snapshot> {
        self.snapshots.iter().find(|s| s.snapshot_id == id)
    }

    /// The current snapshot.
    pub(crate) fn current_snapshot(&self) -> Option<&Snapshot> {
        self.current_snapshot_id().and_then(|id| self.snapshot(id))
    }

    /// The current schema.
    pub(crate) fn current_schema(&self) -> Option<&Schema> {
        let id = self.current_schema_id.unwrap_or(0);
        self.schemas.iter().find(|s| s.schema_id == id)
    }

    /// The default spec's ID and fields (none: unpartitioned).
    pub(crate) fn default_spec(&self) -> (i64, &[PartitionSpecField]) {
        let id = self.default_spec_id.unwrap_or(0);
        let fields = self
            .partition_specs
            .iter()
            .find(|s| s.spec_id == id)
            .map_or(&[][..], |s| &s.fields[..]);
        (id, fields)
    }

    /// A table property's value, when it is text.
    pub(crate) fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).and_then(Json::as_str)
    }

    /// The snapshot branch `name` points at.
    pub(crate) fn ref_snapshot_id(&self, name: &str) -> Option<i64> {
        self.refs
            .get(name)
            .and_then(|r| r.get("snapshot-id"))
            .and_then(signed_value)
    }

    /// Every snapshot a branch or tag points at, the current one included.
    pub(crate) fn referenced_snapshots(&self) -> impl Iterator<Item = i64> + '_ {
        self.refs
            .values()
            .filter_map(|r| r.get("snapshot-id").and_then(signed_value))
            .chain(self.current_snapshot_id())
    }

    /// The ID a new schema of the table takes: one past its highest.
    pub(crate) fn next_schema_id(&self) -> i64 {
        self.schemas.iter().map(|s| s.schema_id).max().unwrap_or(0) + 1
    }

    /// The metadata file's version number (`00003-<uuid>.metadata.json`), else the log's
    /// length, of this metadata read at `location`.
    pub(crate) fn version_at(&self, location: &str) -> i64 {
        let name = location.rsplit('/').next().unwrap_or_default();
        name.split_once('-')
            .and_then(|(v, _)| v.parse::<i64>().ok())
            .unwrap_or(self.metadata_log.len() as i64)
    }

    /// Which requirement of `requirements` this metadata fails, if any (`None` for each:
    /// it holds). `exists`: whether the table exists (this metadata is its current one).
    pub(crate) fn unmet(
        current: Option<&TableMetadata>,
        requirements: &[TableRequirement],
    ) -> Option<String> {
        requirements.iter().find_map(|r| {
            let held = match (r, current) {
                (TableRequirement::AssertCreate, m) => m.is_none(),
                (_, None) => false,
                (TableRequirement::AssertTableUuid { uuid }, Some(m)) => {
                    m.table_uuid.as_deref() == Some(uuid.as_str())
                }
                (TableRequirement::AssertRefSnapshotId { name, snapshot_id }, Some(m)) => {
                    let at = match name.as_str() {
                        // A table of another writer may have no refs: main is its current.
                        "main" => m.ref_snapshot_id("main").or(m.current_snapshot_id()),
                        other => m.ref_snapshot_id(other),
                    };
                    at == *snapshot_id
                }
                (TableRequirement::AssertCurrentSchemaId { current_schema_id }, Some(m)) => {
                    m.current_schema_id.unwrap_or(0) == *current_schema_id
                }
                (TableRequirement::AssertDefaultSpecId { default_spec_id }, Some(m)) => {
                    m.default_spec_id.unwrap_or(0) == *default_spec_id
                }
            };
            (!held).then(|| format!("{r:?} does not hold"))
        })
    }

    /// This metadata with `updates` applied at `now_ms`, as the metadata after the file at
    /// `at` (logged in its metadata log, which keeps the newest files the table's
    /// `write.metadata.previous-versions-max` says, 100 by default).
    pub(crate) fn updated(&self, at: &str, updates: &[TableUpdate], now_ms: i64) -> TableMetadata {
        let mut m = self.clone();
        let mut last_schema = None;
        for u in updates {
            m.apply(u, &mut last_schema, now_ms);
        }
        m.metadata_log.push(MetadataLogEntry {
            metadata_file: at.to_owned(),
            timestamp_ms: self.last_updated_ms,
            other: Other::new(),
        });
        let keep = self
            .property("write.metadata.previous-versions-max")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(100)
            .max(1);
        if m.metadata_log.len() > keep {
            m.metadata_log.drain(..m.metadata_log.len() - keep);
        }
        m.last_updated_ms = now_ms;
        m
    }

    fn apply(&mut self, update: &TableUpdate, last_schema: &mut Option<i64>, now_ms: i64) {
        match update {
            TableUpdate::AddSchema {
                schema,
                last_column_id,
            } => {
                if !self.schemas.iter().any(|s| s.schema_id == schema.schema_id) {
                    self.schemas.push(schema.clone());
                }
                self.last_column_id = self.last_column_id.max(*last_column_id);
                *last_schema = Some(schema.schema_id);
            }
            TableUpdate::SetCurrentSchema { schema_id } => {
                let id = match *schema_id {
                    -1 => last_schema.unwrap_or(0),
                    id => id,
                };
                self.current_schema_id = Some(id);
            }
            TableUpdate::AddSpec { spec } => {
                if !self
                    .partition_specs
                    .iter()
                    .any(|s| s.spec_id == spec.spec_id)
                {
                    self.partition_specs.push(spec.clone());
                }
                let highest = spec.fields.iter().filter_map(|f| f.field_id).max();
                self.last_partition_id = match (self.last_partition_id, highest) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b).or(Some(999)),
                };
            }
            TableUpdate::SetDefaultSpec { spec_id } => {
                // `-1`: the spec added last.
                let id = match *spec_id {
                    -1 => self.partition_specs.last().map_or(0, |s| s.spec_id),
                    id => id,
                };
                self.default_spec_id = Some(id);
            }
            TableUpdate::AddSnapshot { snapshot } => {
                if let Some(seq) = snapshot.sequence_number {
                    self.last_sequence_number = Some(seq);
                }
                self.snapshots.push(snapshot.clone());
            }
            TableUpdate::SetSnapshotRef {
                ref_name,
                snapshot_id,
                kind,
            } => {
                let entry = self
                    .refs
                    .entry(ref_name.clone())
                    .or_insert_with(|| json!({}));
                if let Some(o) = entry.as_object_mut() {
                    o.insert("snapshot-id".into(), json!(snapshot_id));
                    o.insert("type".into(), json!(kind));
                }
                if ref_name == "main" {
                    self.current_snapshot_id = Some(*snapshot_id);
                    let timestamp_ms = self
                        .snapshot(*snapshot_id)
                        .map_or(now_ms, |s| s.timestamp_ms);
                    self.snapshot_log.push(SnapshotLogEntry {
                        snapshot_id: *snapshot_id,
                        timestamp_ms,
                        other: Other::new(),
                    });
                }
            }
            TableUpdate::RemoveSnapshots { snapshot_ids } => {
                self.snapshots
                    .retain(|s| !snapshot_ids.contains(&s.snapshot_id));
                self.snapshot_log
                    .retain(|e| !snapshot_ids.contains(&e.snapshot_id));
            }
            TableUpdate::AssignUuid { uuid } => self.table_uuid = Some(uuid.clone()),
            TableUpdate::UpgradeFormatVersion { format_version } => {
                self.format_version = self.format_version.max(*format_version);
            }
            TableUpdate::AddSortOrder { sort_order } => {
                let orders = self.sort_orders.get_or_insert_with(|| json!([]));
                if let Some(list) = orders.as_array_mut()
                    && !list.iter().any(|o| o["order-id"] == sort_order["order-id"])
                {
                    list.push(sort_order.clone());
                }
            }
            TableUpdate::SetDefaultSortOrder { sort_order_id } => {
                // `-1`: the order added last.
                let last = self
                    .sort_orders
                    .as_ref()
                    .and_then(Json::as_array)
                    .and_then(|l| l.last())
                    .and_then(|o| o["order-id"].as_i64());
                let id = match *sort_order_id {
                    -1 => last.unwrap_or(0),
                    id => id,
                };
                self.default_sort_order_id = Some(id);
            }
            TableUpdate::SetLocation { location } => self.location = location.clone(),
            TableUpdate::SetProperties { updates } => {
                for (k, v) in updates {
                    self.properties.insert(k.clone(), Json::String(v.clone()));
                }
            }
        }
    }
}

impl Schema {
    /// A schema of `fields`, with its ID.
    pub(crate) fn new(schema_id: i64, fields: Vec<NestedField>) -> Schema {
        let mut other = Other::new();
        other.insert("type".into(), json!("struct"));
        Schema {
            schema_id,
            fields,
            other,
        }
    }

    /// Top-level column of ID `id`.
    pub(crate) fn field_by_id(&self, id: i64) -> Option<&NestedField> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The columns' names, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name.clone()).collect()
    }
}

impl NestedField {
    /// A field without doc or defaults.
    pub(crate) fn new(id: i64, name: impl Into<String>, required: bool, ty: Type) -> NestedField {
        NestedField {
            id,
            name: name.into(),
            required,
            ty,
            other: Other::new(),
        }
    }

    /// Its `initial-default`: the value a file without the field reads (format version 3).
    pub(crate) fn initial_default(&self) -> Option<&Json> {
        self.other.get("initial-default").filter(|v| !v.is_null())
    }
}

impl Type {
    /// The type without what does not make it another: nested fields compared by ID, name and
    /// type (not docs, defaults or nullability), primitive names without spaces
    /// (`decimal(10,2)` is `decimal(10, 2)`).
    pub(crate) fn same_as(&self, other: &Type) -> bool {
        match (self, other) {
            (Type::Primitive(a), Type::Primitive(b)) => a.replace(' ', "") == b.replace(' ', ""),
            (Type::Struct(a), Type::Struct(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|(x, y)| x.id == y.id && x.name == y.name && x.ty.same_as(&y.ty))
            }
            (
                Type::List {
                    element_id: a,
                    element_required: ar,
                    element: ae,
                },
                Type::List {
                    element_id: b,
                    element_required: br,
                    element: be,
                },
            ) => a == b && ar == br && ae.same_as(be),
            (
                Type::Map {
                    key_id: ak,
                    key: akt,
                    value_id: av,
                    value_required: ar,
                    value: avt,
                },
                Type::Map {
                    key_id: bk,
                    key: bkt,
                    value_id: bv,
                    value_required: br,
                    value: bvt,
                },
            ) => ak == bk && av == bv && ar == br && akt.same_as(bkt) && avt.same_as(bvt),
            _ => false,
        }
    }

    /// The primitive type's name.
    pub(crate) fn primitive(&self) -> Option<&str> {
        match self {
            Type::Primitive(p) => Some(p),
            _ => None,
        }
    }
}

impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Type::Primitive(p) => write!(f, "{p:?}"),
            other => write!(f, "{}", Json::from(other)),
        }
    }
}

impl From<&Type> for Json {
    fn from(ty: &Type) -> Json {
        match ty {
            Type::Primitive(p) => Json::String(p.clone()),
            Type::Struct(fields) => json!({"type": "struct", "fields": fields}),
            Type::List {
                element_id,
                element_required,
                element,
            } => json!({
                "type": "list",
                "element-id": element_id,
                "element": Json::from(&**element),
                "element-required": element_required,
            }),
            Type::Map {
                key_id,
                key,
                value_id,
                value_required,
                value,
            } => json!({
                "type": "map",
                "key-id": key_id,
                "key": Json::from(&**key),
                "value-id": value_id,
                "value": Json::from(&**value),
                "value-required": value_required,
            }),
        }
    }
}

impl Serialize for Type {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        Json::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Type {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Type, D::Error> {
        use serde::de::Error as _;
        let v = Json::deserialize(d)?;
        type_of(&v).map_err(D::Error::custom)
    }
}

fn type_of(v: &Json) -> std::result::Result<Type, String> {
    if let Some(p) = v.as_str() {
        return Ok(Type::Primitive(p.to_owned()));
    }
    let id = |k: &str| {
        v.get(k)
            .and_then(Json::as_i64)
            .ok_or_else(|| format!("a {} type without its {k}", v["type"]))
    };
    let inner = |k: &str| -> std::result::Result<Box<Type>, String> {
        let t = v
            .get(k)
            .ok_or_else(|| format!("a {} type without its {k}", v["type"]))?;
        Ok(Box::new(type_of(t)?))
    };
    let flag = |k: &str| v.get(k).and_then(Json::as_bool).unwrap_or(false);
    match v.get("type").and_then(Json::as_str) {
        Some("struct") => {
            let fields = v.get("fields").cloned().unwrap_or_else(|| json!([]));
            let fields: Vec<NestedField> =
                serde_json::from_value(fields).map_err(|e| format!("a struct's fields: {e}"))?;
            Ok(Type::Struct(fields))
        }
        Some("list") => Ok(Type::List {
            element_id: id("element-id")?,
            element_required: flag("element-required"),
            element: inner("element")?,
        }),
        Some("map") => Ok(Type::Map {
            key_id: id("key-id")?,
            key: inner("key")?,
            value_id: id("value-id")?,
            value_required: flag("value-required"),
            value: inner("value")?,
        }),
        _ => Err(format!("not an Iceberg type: {v}")),
    }
}

/// A snapshot ID as the metadata spells it: a long, or (as some writers print them) the
/// unsigned number of the same 64 bits.
pub(crate) fn signed_value(v: &Json) -> Option<i64> {
    // Two's complement: the same 64 bits, as Java's long holds them.
    v.as_i64().or_else(|| v.as_u64().map(|u| u as i64))
}

/// Calls `f` on every snapshot ID of the metadata `json` (the table's current one, each
/// snapshot's and its parent's, the snapshot log's, the refs', the statistics').
fn snapshot_ids(json: &mut Json, f: &mut impl FnMut(&mut Json)) {
    match json {
        Json::Object(map) => {
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "snapshot-id" | "parent-snapshot-id" | "current-snapshot-id" => f(value),
                    _ => snapshot_ids(value, f),
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(|v| snapshot_ids(v, f)),
        _ => {}
    }
}

fn signed<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    use serde::de::Error as _;
    let v = Json::deserialize(d)?;
    signed_value(&v).ok_or_else(|| D::Error::custom(format!("not a snapshot ID: {v}")))
}

fn signed_opt<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    match Json::deserialize(d)? {
        Json::Null => Ok(None),
        v => signed_value(&v)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("not a snapshot ID: {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table another writer made, with what pgarrow does not know.
    fn theirs() -> Json {
        json!({
            "format-version": 2,
            "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
            "location": "s3://b/t",
            "last-sequence-number": 1,
            "last-updated-ms": 5,
            "last-column-id": 3,
            "current-schema-id": 0,
            "schemas": [{"type": "struct", "schema-id": 0, "identifier-field-ids": [1], "fields": [
                {"id": 1, "name": "id", "required": true, "type": "long", "doc": "the key"},
                {"id": 2, "name": "tags", "required": false, "type":
                    {"type": "list", "element-id": 3, "element": "string", "element-required": false}}
            ]}],
            "default-spec-id": 0,
            "partition-specs": [{"spec-id": 0, "fields": []}],
            "last-partition-id": 999,
            "default-sort-order-id": 0,
            "sort-orders": [{"order-id": 0, "fields": []}],
            "properties": {"owner": "spark", "write.metadata.previous-versions-max": "2"},
            "current-snapshot-id": 18446744073709551000u64,
            "refs": {"main": {"snapshot-id": 18446744073709551000u64, "type": "branch"},
                     "audit": {"snapshot-id": 18446744073709551000u64, "type": "tag", "max-ref-age-ms": 9}},
            "snapshots": [{"snapshot-id": 18446744073709551000u64, "sequence-number": 1,
                "timestamp-ms": 5, "manifest-list": "s3://b/t/metadata/snap.avro",
                "summary": {"operation": "append"}, "schema-id": 0, "first-row-id": 0}],
            "snapshot-log": [{"snapshot-id": 18446744073709551000u64, "timestamp-ms": 5}],
            "metadata-log": [],
            "statistics": [{"snapshot-id": 1, "statistics-path": "s3://b/t/stats.puffin"}],
            "x-future": {"kept": true}
        })
    }

    #[test]
    fn another_writers_metadata_survives_a_round_trip_with_what_pgarrow_does_not_know() {
        let text = serde_json::to_vec(&theirs()).unwrap();
        let m = TableMetadata::parse(&text).unwrap();
        // Unsigned snapshot IDs read as the longs they are.
        assert_eq!(m.current_snapshot_id(), Some(-616));
        assert_eq!(m.snapshots[0].snapshot_id, -616);
        let back: Json = serde_json::from_slice(&m.to_json_bytes()).unwrap();
        for key in [
            "statistics",
            "x-future",
            "sort-orders",
            "properties",
            "schemas",
        ] {
            assert_eq!(back[key], theirs()[key], "{key}");
        }
        assert_eq!(back["refs"]["audit"]["max-ref-age-ms"], json!(9));
        assert_eq!(back["snapshots"][0]["first-row-id"], json!(0));
        assert_eq!(back["schemas"][0]["fields"][0]["doc"], json!("the key"));
        // Parsed again, the same metadata.
        assert_eq!(TableMetadata::parse(&m.to_json_bytes()).unwrap(), m);
    }

    #[test]
    fn updates_apply_under_their_requirements() {
        let m: TableMetadata = serde_json::from_value(theirs()).unwrap();
        let main = TableRequirement::AssertRefSnapshotId {
            name: "main".into(),
            snapshot_id: Some(-616),
        };
        assert_eq!(
            TableMetadata::unmet(Some(&m), std::slice::from_ref(&main)),
            None
        );
        let moved = TableRequirement::AssertRefSnapshotId {
            name: "main".into(),
            snapshot_id: Some(7),
        };
        assert!(TableMetadata::unmet(Some(&m), &[main.clone(), moved]).is_some());
        assert!(TableMetadata::unmet(Some(&m), &[TableRequirement::AssertCreate]).is_some());
        assert_eq!(
            TableMetadata::unmet(None, &[TableRequirement::AssertCreate]),
            None
        );
        assert!(TableMetadata::unmet(None, &[main]).is_some());

        let snap = Snapshot {
            snapshot_id: 42,
            parent_snapshot_id: Some(-616),
            sequence_number: Some(2),
            timestamp_ms: 9,
            manifest_list: Some("s3://b/t/metadata/snap-42.avro".into()),
            summary: Map::new(),
            schema_id: Some(1),
            other: Other::new(),
        };
        let schema = Schema::new(
            1,
            vec![NestedField::new(
                1,
                "id",
                true,
                Type::Primitive("long".into()),
            )],
        );
        let updates = [
            TableUpdate::AddSchema {
                schema,
                last_column_id: 4,
            },
            TableUpdate::SetCurrentSchema { schema_id: -1 },
            TableUpdate::AddSnapshot { snapshot: snap },
            TableUpdate::SetSnapshotRef {
                ref_name: "main".into(),
                snapshot_id: 42,
                kind: "branch".into(),
            },
        ];
        let mut next = m.updated("s3://b/t/metadata/00001-a.metadata.json", &updates, 10);
        assert_eq!(next.current_snapshot_id(), Some(42));
        assert_eq!(next.current_schema_id, Some(1));
        assert_eq!(next.last_column_id, 4);
        assert_eq!(next.last_sequence_number, Some(2));
        assert_eq!(next.last_updated_ms, 10);
        assert_eq!(next.ref_snapshot_id("audit"), Some(-616), "the tag is kept");
        assert_eq!(next.snapshot_log.last().unwrap().snapshot_id, 42);
        assert_eq!(next.metadata_log[0].timestamp_ms, 5);
        // The metadata log keeps the newest files the table's property says.
        for k in 2..6 {
            next = next.updated(&format!("/m/{k:05}-x.metadata.json"), &[], 11);
        }
        let log: Vec<&str> = next
            .metadata_log
            .iter()
            .map(|e| e.metadata_file.as_str())
            .collect();
        assert_eq!(
            log,
            ["/m/00004-x.metadata.json", "/m/00005-x.metadata.json"]
        );
        let gone = next.updated(
            "/m/00006-x.metadata.json",
            &[TableUpdate::RemoveSnapshots {
                snapshot_ids: vec![-616],
            }],
            12,
        );
        assert_eq!(gone.snapshots.len(), 1);
        assert!(gone.snapshot_log.iter().all(|e| e.snapshot_id == 42));
        assert_eq!(gone.version_at("/m/00006-x.metadata.json"), 6);
    }

    #[test]
    fn types_read_and_write_as_the_specification_spells_them() {
        let map = json!({"type": "map", "key-id": 4, "key": "string", "value-id": 5,
            "value": {"type": "struct", "fields": [{"id": 6, "name": "x", "required": false,
            "type": "decimal(10,2)", "initial-default": "1.50"}]}, "value-required": true});
        let ty: Type = serde_json::from_value(map.clone()).unwrap();
        assert_eq!(Json::from(&ty), map);
        let Type::Map { value, .. } = &ty else {
            panic!("{ty:?}")
        };
        let Type::Struct(fields) = &**value else {
            panic!("{value:?}")
        };
        assert_eq!(fields[0].initial_default(), Some(&json!("1.50")));
        let spaced: Type = serde_json::from_value(json!({"type": "map", "key-id": 4,
            "key": "string", "value-id": 5, "value": {"type": "struct", "fields": [{"id": 6,
            "name": "x", "required": true, "type": "decimal(10, 2)"}]}, "value-required": true}))
        .unwrap();
        assert!(
            ty.same_as(&spaced),
            "docs, defaults and spaces do not make another type"
        );
        assert!(serde_json::from_value::<Type>(json!({"type": "list"})).is_err());
        assert!(serde_json::from_value::<Type>(json!(5)).is_err());
    }
    /// The metadata files other writers made (Spark, pyiceberg, DuckDB: duckdb-iceberg's test
    /// tables, format versions 1 to 3): each reads, writes back as the same JSON, and after a
    /// commit's updates (a schema, a snapshot and `main` moved to it) keeps every field the
    /// commit does not change, those pgarrow does not know included.
    #[test]
    fn other_writers_tables_read_change_and_write_back_with_their_fields_intact() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/iceberg-golden");
        let mut files = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.to_string_lossy().ends_with(".metadata.json") {
                    files.push(path);
                }
            }
        }
        assert!(
            files.len() >= 80,
            "{} metadata files under {root}",
            files.len()
        );
        let mut versions = std::collections::BTreeSet::new();
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let theirs: Json = serde_json::from_slice(&bytes).unwrap();
            let m =
                TableMetadata::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            versions.insert(m.format_version);
            let again: Json = serde_json::from_slice(&m.to_json_bytes()).unwrap();
            assert_eq!(again, theirs, "{} written back", path.display());

            let schema_id = m.next_schema_id();
            let mut fields = m
                .current_schema()
                .map(|s| s.fields.clone())
                .unwrap_or_default();
            let last = m.last_column_id + 1;
            fields.push(NestedField::new(
                last,
                "added",
                false,
                Type::Primitive("long".into()),
            ));
            let snap = Snapshot {
                snapshot_id: 4242,
                parent_snapshot_id: m.current_snapshot_id(),
                sequence_number: Some(m.last_sequence_number.unwrap_or(0) + 1),
                timestamp_ms: 9,
                manifest_list: Some("file:///t/metadata/snap-4242.avro".into()),
                summary: Map::new(),
                schema_id: Some(schema_id),
                other: Other::new(),
            };
            let updates = [
                TableUpdate::AddSchema {
                    schema: Schema::new(schema_id, fields),
                    last_column_id: last,
                },
                TableUpdate::SetCurrentSchema { schema_id: -1 },
                TableUpdate::AddSnapshot { snapshot: snap },
                TableUpdate::SetSnapshotRef {
                    ref_name: "main".into(),
                    snapshot_id: 4242,
                    kind: "branch".into(),
                },
            ];
            let next = m.updated("file:///t/metadata/old.json", &updates, 10);
            let next: Json = serde_json::from_slice(&next.to_json_bytes()).unwrap();
            let changed = [
                "schemas",
                "current-schema-id",
                "last-column-id",
                "snapshots",
                "current-snapshot-id",
                "refs",
                "snapshot-log",
                "metadata-log",
                "last-sequence-number",
                "last-updated-ms",
            ];
            let (Json::Object(before), Json::Object(after)) = (&theirs, &next) else {
                panic!("{}: not an object", path.display());
            };
            for (key, value) in before {
                if !changed.contains(&key.as_str()) {
                    assert_eq!(after.get(key), Some(value), "{}: {key}", path.display());
                }
            }
            // What was there stays, the commit's own added after it.
            for key in ["schemas", "snapshots", "snapshot-log", "metadata-log"] {
                let (Some(Json::Array(was)), Some(Json::Array(now))) =
                    (before.get(key), after.get(key))
                else {
                    continue;
                };
                assert_eq!(&now[..was.len()], &was[..], "{}: {key}", path.display());
                assert!(now.len() > was.len(), "{}: {key}", path.display());
            }
            for (name, r) in before
                .get("refs")
                .and_then(Json::as_object)
                .into_iter()
                .flatten()
            {
                if name != "main" {
                    assert_eq!(
                        after["refs"].get(name),
                        Some(r),
                        "{}: ref {name}",
                        path.display()
                    );
                }
            }
            assert_eq!(after["current-snapshot-id"], json!(4242));
            assert_eq!(after["refs"]["main"]["snapshot-id"], json!(4242));
        }
        assert!(
            versions.is_superset(&[1, 2].into_iter().collect()),
            "format versions {versions:?}"
        );
    }
}
