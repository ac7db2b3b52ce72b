//! The memcached reply parser on any bytes: no panic, no more values than keys asked for, no
//! reply over its byte cap.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ratekeeper_memcached::fuzz_reply(data);
});
