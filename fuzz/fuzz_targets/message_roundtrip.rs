//! Fuzz target `message_roundtrip`: see `gcm_ccs_fuzz::check_message` for what it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gcm_ccs_fuzz::check_message(data));
