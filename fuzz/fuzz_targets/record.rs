//! Structure-aware: records, nested records, records of arrays and enums.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use pgarrow_testkit::copygen::Shape;

fuzz_target!(|data: &[u8]| {
    let shapes = [
        Shape::Record(vec![Shape::Int4, Shape::Text, Shape::Numeric(9, 4)]),
        Shape::Record(vec![
            Shape::Record(vec![Shape::Date, Shape::Enum(vec!["a".into(), "b".into()])]),
            Shape::Array(Box::new(Shape::Int4), 1),
        ]),
        Shape::Hstore,
    ];
    common::structured(data, &shapes);
});
