#![no_main]
//! See `vigil_fuzz::ingest`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::ingest(data));
