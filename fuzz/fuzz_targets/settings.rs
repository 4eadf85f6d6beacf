#![no_main]
//! See `vigil_fuzz::settings`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::settings(data));
