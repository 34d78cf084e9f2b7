#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dpopkit_fuzz::key_any_format(data));
