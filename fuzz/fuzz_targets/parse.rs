//! The limit-string parser: no panic, errors inside the input, canonical forms round-trip.
#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::parse(data);
});
