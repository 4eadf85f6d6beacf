#![no_main]
//! See `vigil_fuzz::gateway`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::gateway(data));
