#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dpopkit_fuzz::scrub_secrets(data));
