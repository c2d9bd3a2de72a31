//! The catalog model: what `pg_type`, `pg_attribute`, `pg_enum` and `pg_range` say about the
//! types a set of columns needs, looked up once (the `pgarrow` crate's catalog query) and
//! read by both directions.

use std::collections::HashMap;

/// What the catalog says about one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogType {
    /// Type OID.
    pub oid: u32,
    /// Schema of the type.
    pub schema: String,
    /// `pg_type.typname`.
    pub name: String,
    /// `format_type(oid, NULL)`, for messages and metadata.
    pub display: String,
    /// The kind of type.
    pub kind: CatalogKind,
}

/// The structure of a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogKind {
    /// A base type (built in or from an extension).
    Base,
    /// An array of `element`.
    Array {
        /// Element type OID.
        element: u32,
    },
    /// A domain over `base`, with the domain's own typmod.
    Domain {
        /// Base type OID.
        base: u32,
        /// Typmod of the base type in the domain (-1 when none).
        typmod: i32,
        /// Declared array dimensions of a domain over an array (`typndims`), 0 if none.
        dims: usize,
    },
    /// A composite type: its live (non-dropped) attributes in order.
    Composite {
        /// The attributes.
        fields: Vec<Attribute>,
    },
    /// An enum: its labels in `pg_enum.enumsortorder` order.
    Enum {
        /// The labels.
        labels: Vec<String>,
    },
    /// A range over `subtype`.
    Range {
        /// Subtype OID.
        subtype: u32,
    },
    /// A multirange of `range`.
    Multirange {
        /// Range type OID.
        range: u32,
    },
    /// A pseudo-type or anything else.
    Other,
}

/// One attribute of a composite type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Type OID.
    pub oid: u32,
    /// Typmod.
    pub typmod: i32,
    /// `format_type(oid, typmod)`.
    pub display: String,
    /// Declared array dimensions (`attndims`), 0 when not declared.
    pub dims: usize,
}

/// The types one export or load needs, looked up once. Never cached across them: extension
/// types and enums can change in between.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    types: HashMap<u32, CatalogType>,
    money_scale: Option<i8>,
}

impl Catalog {
    /// An empty catalog: only built-in scalar types resolve.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a type.
    pub fn insert(&mut self, t: CatalogType) {
        self.types.insert(t.oid, t);
    }

    /// Looks a type up.
    pub fn get(&self, oid: u32) -> Option<&CatalogType> {
        self.types.get(&oid)
    }

    /// Sets the session's `money` fraction digits (`lc_monetary`; the scale of
    /// `'0'::money::numeric`). Without it, `money` has no binary decoder or encoder and goes
    /// through text.
    pub fn set_money_scale(&mut self, scale: i8) {
        self.money_scale = Some(scale);
    }

    /// The session's `money` fraction digits, if known.
    pub fn money_scale(&self) -> Option<i8> {
        self.money_scale
    }
}
