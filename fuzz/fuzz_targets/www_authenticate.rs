#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dpopkit_fuzz::www_authenticate(data));
