#![no_main]
//! See `vigil_fuzz::rules`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::rules(data));
