//! Fuzz target: see `peerstorm_model::fuzzing::frame` for the invariants checked.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerstorm_model::fuzzing::frame(data));
