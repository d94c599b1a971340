#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aksnet_fuzz::dns::query(data));
