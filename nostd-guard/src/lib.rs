//! Links the core without `std` and exercises every strategy, so the build fails the moment the
//! core (or anything it depends on) needs `std`.
#![no_std]

use core::panic::PanicInfo;

use ratekeeper_core::{
    BoundedMovingWindow, FixedWindow, Gcra, Limit, Limits, SlidingWindow, Strategy, Timestamp,
};

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    loop {}
}

/// Parses a limit string and runs one hit of each strategy; returns how many were allowed.
#[unsafe(no_mangle)]
pub extern "C" fn ratelimit_guard(now_ns: u64) -> u32 {
    let Ok(limits) = "10 per second; 100/hour".parse::<Limits<2>>() else { return 0 };
    let limit: &Limit = &limits[0];
    let now = Timestamp::from_nanos(now_ns);
    let mut allowed = 0;
    allowed += u32::from(FixedWindow::new().hit(limit, now, 1).is_allowed());
    allowed += u32::from(BoundedMovingWindow::<16>::new().hit(limit, now, 1).is_allowed());
    allowed += u32::from(SlidingWindow::new().hit(limit, now, 1).is_allowed());
    allowed += u32::from(Gcra::new().hit(limit, now, 1).is_allowed());
    allowed
}
