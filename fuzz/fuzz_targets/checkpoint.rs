#![no_main]
//! See `vigil_fuzz::checkpoint`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::checkpoint(data));
