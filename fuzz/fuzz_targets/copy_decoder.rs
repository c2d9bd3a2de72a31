//! Arbitrary bytes as a binary COPY stream of every generator shape.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plans = common::shapes::plans(&common::shapes::shapes());
    let split = data.first().copied().unwrap_or(0) as usize * 4;
    common::decode(&plans, data, split);
});
