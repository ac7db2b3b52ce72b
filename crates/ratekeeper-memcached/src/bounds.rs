//! What one memcached item can hold and how long it may live: the store's bounds.

use ratekeeper_core::{Limit, StrategyKind};
use ratekeeper_storage::StorageError;

/// The largest moving-window limit an item can hold (16 bytes per entry; memcached items are
/// at most 1 MiB by default).
pub const MAX_MOVING_WINDOW: u64 = 60_000;
/// memcached reads an expiry above 30 days as a Unix time.
const RELATIVE_EXPIRY_MAX: u64 = 30 * 24 * 3600;
/// The latest Unix time memcached takes as an expiry (it reads the field as a signed 32-bit
/// number: anything above is a time long past, and the item is gone as soon as it is stored).
const ABSOLUTE_EXPIRY_MAX: u64 = i32::MAX as u64;
/// The expiry that means "never": an item whose idle time ends past
/// [`ABSOLUTE_EXPIRY_MAX`] is kept until evicted instead.
const NO_EXPIRY: u32 = 0;

/// Whether one item can hold `limit`'s state: a moving window logs every hit in its item.
pub(crate) fn check_limit(limit: &Limit, strategy: StrategyKind) -> Result<(), StorageError> {
    if strategy == StrategyKind::MovingWindow && limit.amount() > MAX_MOVING_WINDOW {
        return Err(StorageError::configuration(
            "memcached",
            format!(
                "a moving window of {limit} holds up to {} entries in one item; at most {MAX_MOVING_WINDOW}",
                limit.amount()
            ),
        ));
    }
    Ok(())
}

/// memcached's `exptime` for an item that may expire `secs` from now, `unix` seconds after the
/// epoch: relative up to 30 days, absolute up to 2038-01-19, and never after that.
pub(crate) fn exptime(secs: u64, unix: u64) -> u32 {
    if secs <= RELATIVE_EXPIRY_MAX {
        return secs as u32;
    }
    match unix.saturating_add(secs) {
        at if at <= ABSOLUTE_EXPIRY_MAX => at as u32,
        _ => NO_EXPIRY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_relative_absolute_or_none() {
        let now = 1_800_000_000;
        assert_eq!(exptime(60, now), 60);
        assert_eq!(exptime(RELATIVE_EXPIRY_MAX, now), 30 * 24 * 3600);
        assert_eq!(
            exptime(RELATIVE_EXPIRY_MAX + 1, now),
            1_800_000_000 + 2_592_001
        );
        // Fifteen years from 2027 ends past 2038-01-19: no expiry rather than one long past.
        assert_eq!(exptime(15 * 360 * 86_400, now), NO_EXPIRY);
        assert_eq!(exptime(u64::MAX, now), NO_EXPIRY);
    }
}
