//! Fuzz target `frame_reader`: see `gcm_ccs_fuzz::check_frame_reader` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gcm_ccs_fuzz::check_frame_reader(data));
