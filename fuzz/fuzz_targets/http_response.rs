//! Fuzz target `http_response`: see `gcm_ccs_fuzz::check_http_response` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gcm_ccs_fuzz::check_http_response(data));
