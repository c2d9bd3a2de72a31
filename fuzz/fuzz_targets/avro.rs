//! Arbitrary bytes as an Avro object container file (an Iceberg manifest or manifest list of
//! any writer): never a panic, no unbounded loop or allocation; and a file that reads is
//! written again under its own schema and reads back as the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pgarrow_lake::fuzzing::avro_round_trip(data);
});
