#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lvs_fuzz::xmit_rewrite(data));
