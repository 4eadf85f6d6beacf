#![no_main]
//! See `vigil_fuzz::lists`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::lists(data));
