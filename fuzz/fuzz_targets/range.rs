//! Structure-aware: ranges and multiranges over integers, dates and numerics.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use pgarrow_testkit::copygen::Shape;

fuzz_target!(|data: &[u8]| {
    let shapes = [
        Shape::Range(Box::new(Shape::Int4)),
        Shape::Range(Box::new(Shape::Date)),
        Shape::Multirange(Box::new(Shape::Numeric(6, 1))),
    ];
    common::structured(data, &shapes);
});
