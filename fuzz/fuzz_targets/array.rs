//! Structure-aware: arrays of one to three dimensions, of scalars, records and ranges.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use pgarrow_testkit::copygen::Shape;

fuzz_target!(|data: &[u8]| {
    let shapes = [
        Shape::Array(Box::new(Shape::Int4), 1),
        Shape::Array(Box::new(Shape::Text), 2),
        Shape::Array(Box::new(Shape::Numeric(5, 2)), 3),
        Shape::Array(Box::new(Shape::Record(vec![Shape::Int4, Shape::Date])), 1),
        Shape::Array(Box::new(Shape::Range(Box::new(Shape::Int4))), 1),
    ];
    common::structured(data, &shapes);
});
