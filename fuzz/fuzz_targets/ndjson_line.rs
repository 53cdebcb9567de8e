//! Fuzz target `ndjson_line`: see `gcm_ccs_fuzz::check_ndjson` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gcm_ccs_fuzz::check_ndjson(data));
