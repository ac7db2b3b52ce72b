//! The sliding-window state machine against its reference model.
#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::strategy(ratekeeper_core::StrategyKind::SlidingWindowCounter, data);
});
