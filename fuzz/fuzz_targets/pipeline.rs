#![no_main]
//! See `vigil_fuzz::pipeline`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::pipeline(data));
