#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lvs_fuzz::sim_scenario(data));
