//! Fuzz target `classify_json`: see `gcm_ccs_fuzz::check_classify_json` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gcm_ccs_fuzz::check_classify_json(data));
