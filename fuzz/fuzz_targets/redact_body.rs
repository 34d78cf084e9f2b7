#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dpopkit_fuzz::redact_body_check(data));
