//! Fuzz target: see `peerstorm_model::fuzzing::msgpack` for the invariants checked.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerstorm_model::fuzzing::msgpack(data));
