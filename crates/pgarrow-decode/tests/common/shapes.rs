//! Generator shapes mapped onto a synthetic catalog: shared by `tests/structured.rs` and the
//! cargo-fuzz targets in `fuzz/` (which include this file by path).

use pgarrow_decode::mapping::{Attribute, Catalog, CatalogKind, CatalogType};
use pgarrow_decode::policy::Policies;
use pgarrow_decode::{ColumnMapping, PgColumn, types::oid};
use pgarrow_testkit::copygen::Shape;

fn add(catalog: &mut Catalog, next: &mut u32, name: &str, kind: CatalogKind) -> (u32, i32) {
    *next += 1;
    catalog.insert(CatalogType {
        oid: *next,
        schema: "public".into(),
        name: name.into(),
        display: name.into(),
        kind,
    });
    (*next, -1)
}

/// Registers `shape` in `catalog` and returns its OID and typmod.
fn register(shape: &Shape, catalog: &mut Catalog, next: &mut u32) -> (u32, i32) {
    match shape {
        Shape::Int4 => (oid::INT4, -1),
        Shape::Text => (oid::TEXT, -1),
        Shape::Date => (oid::DATE, -1),
        Shape::Numeric(p, s) => (oid::NUMERIC, ((i32::from(*p) << 16) | i32::from(*s)) + 4),
        Shape::Array(element, _) => {
            let (element, _) = register(element, catalog, next);
            add(catalog, next, "_gen", CatalogKind::Array { element })
        }
        Shape::Record(fields) => {
            let fields = fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let (oid, typmod) = register(f, catalog, next);
                    Attribute {
                        name: format!("f{i}"),
                        oid,
                        typmod,
                        display: "gen".into(),
                        dims: 0,
                    }
                })
                .collect();
            add(
                catalog,
                next,
                "gen_record",
                CatalogKind::Composite { fields },
            )
        }
        Shape::Range(sub) => {
            let (subtype, _) = register(sub, catalog, next);
            add(catalog, next, "gen_range", CatalogKind::Range { subtype })
        }
        Shape::Multirange(sub) => {
            let (range, _) = register(&Shape::Range(sub.clone()), catalog, next);
            add(
                catalog,
                next,
                "gen_multirange",
                CatalogKind::Multirange { range },
            )
        }
        Shape::Hstore => add(catalog, next, "hstore", CatalogKind::Base),
        Shape::Enum(labels) => add(
            catalog,
            next,
            "gen_enum",
            CatalogKind::Enum {
                labels: labels.clone(),
            },
        ),
    }
}

pub fn shapes() -> Vec<Shape> {
    let int4 = || Box::new(Shape::Int4);
    vec![
        Shape::Array(int4(), 1),
        Shape::Array(Box::new(Shape::Text), 2),
        Shape::Array(Box::new(Shape::Numeric(5, 2)), 3),
        Shape::Record(vec![
            Shape::Int4,
            Shape::Text,
            Shape::Array(Box::new(Shape::Date), 1),
            Shape::Record(vec![
                Shape::Numeric(9, 4),
                Shape::Enum(vec!["a".into(), "b".into()]),
            ]),
        ]),
        Shape::Array(
            Box::new(Shape::Record(vec![
                Shape::Int4,
                Shape::Range(Box::new(Shape::Date)),
            ])),
            1,
        ),
        Shape::Range(int4()),
        Shape::Multirange(Box::new(Shape::Numeric(6, 1))),
        Shape::Hstore,
        Shape::Enum(vec!["sad".into(), "ok".into(), "happy".into()]),
    ]
}

pub fn plans(shapes: &[Shape]) -> Vec<ColumnMapping> {
    let mut catalog = Catalog::new();
    let mut next = 900_000;
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (oid, typmod) = register(s, &mut catalog, &mut next);
            let dims = match s {
                Shape::Array(_, d) => *d,
                _ => 1,
            };
            let column = PgColumn::new(format!("c{i}"), oid, typmod);
            let plan = ColumnMapping::resolve(column, &catalog, &Policies::default(), dims);
            assert!(plan.cast.is_none(), "{s:?} must have a decoder");
            plan
        })
        .collect()
}
