#![no_main]
//! See `vigil_fuzz::avro`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::avro(data));
