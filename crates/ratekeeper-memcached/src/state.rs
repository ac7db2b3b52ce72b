//! A strategy's state as a memcached value: a format byte, the strategy's code, then its parts
//! as little-endian `u64`s. A value that does not decode is an error, never a fresh state (a
//! fresh state would hand the client a new quota).

use std::collections::VecDeque;

use ratekeeper_core::{
    AnyStrategy, Entry, FixedWindow, Gcra, Limit, MovingWindow, RetryAfter, SlidingWindow, Stats,
    Strategy, StrategyKind, Timestamp,
};

/// The values' format: stored in each value and in the key's name, so that versions with
/// different formats never read each other's.
pub(crate) const FORMAT: u8 = 1;

/// One counter's state, of any strategy (the core's), with its memcached encoding.
#[derive(Clone, Debug)]
pub(crate) struct State(AnyStrategy<VecDeque<Entry>>);

/// The strategy's code in a value.
const fn code(kind: StrategyKind) -> u8 {
    match kind {
        StrategyKind::FixedWindow => b'f',
        StrategyKind::MovingWindow => b'm',
        StrategyKind::SlidingWindowCounter => b's',
        StrategyKind::Gcra => b'g',
        // Matches no stored value: decoding fails, never a fresh quota.
        _ => b'?',
    }
}

impl State {
    /// A fresh state of `kind`; `None` for a strategy this backend does not know.
    pub(crate) fn fresh(kind: StrategyKind) -> Option<Self> {
        AnyStrategy::fresh(kind).map(Self)
    }

    pub(crate) fn fits(&self, limit: &Limit, now: Timestamp, cost: u64) -> bool {
        self.0.test(limit, now, cost).is_allowed()
    }

    pub(crate) fn hit(&mut self, limit: &Limit, now: Timestamp, cost: u64) -> bool {
        self.0.hit(limit, now, cost).is_allowed()
    }

    pub(crate) fn refund(
        &mut self,
        limit: &Limit,
        now: Timestamp,
        cost: u64,
        at: Option<Timestamp>,
    ) {
        match at {
            Some(at) => self.0.refund_at(limit, now, cost, at),
            None => self.0.refund(limit, now, cost),
        }
    }

    pub(crate) fn stats(&self, limit: &Limit, now: Timestamp) -> Stats {
        self.0.stats(limit, now)
    }

    pub(crate) fn retry_after(&self, limit: &Limit, now: Timestamp, cost: u64) -> RetryAfter {
        self.0.retry_after(limit, now, cost)
    }

    /// When the state is as good as fresh: it can expire then.
    pub(crate) fn idle_at(&self, limit: &Limit) -> Timestamp {
        self.0.idle_at(limit)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let (kind, parts): (StrategyKind, Vec<u64>) = match &self.0 {
            AnyStrategy::Fixed(s) => {
                let (start, count) = s.parts();
                (StrategyKind::FixedWindow, vec![start.as_nanos(), count])
            }
            AnyStrategy::Moving(s) => (
                StrategyKind::MovingWindow,
                s.log()
                    .iter()
                    .flat_map(|e| [e.at.as_nanos(), e.cost])
                    .collect(),
            ),
            AnyStrategy::Sliding(s) => {
                let (bucket, prev, cur) = s.parts();
                (StrategyKind::SlidingWindowCounter, vec![bucket, prev, cur])
            }
            AnyStrategy::Gcra(s) => (StrategyKind::Gcra, vec![s.tat().as_nanos()]),
        };
        let mut out = Vec::with_capacity(2 + 8 * parts.len());
        out.extend_from_slice(&[FORMAT, code(kind)]);
        for p in parts {
            out.extend_from_slice(&p.to_le_bytes());
        }
        out
    }

    /// The state in `data`, which must be of `kind`.
    pub(crate) fn decode(kind: StrategyKind, data: &[u8]) -> Result<Self, String> {
        let Some((&[format, c], rest)) = data.split_first_chunk::<2>() else {
            return Err("a value too short".into());
        };
        if format != FORMAT || c != code(kind) {
            return Err(format!(
                "a value of format {format} for strategy {:?}",
                c as char
            ));
        }
        if rest.len() % 8 != 0 {
            return Err("a value of the wrong length".into());
        }
        let parts: Vec<u64> = rest
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect();
        let ts = Timestamp::from_nanos;
        Ok(Self(match (kind, parts.as_slice()) {
            (StrategyKind::FixedWindow, &[start, count]) => {
                AnyStrategy::Fixed(FixedWindow::from_parts(ts(start), count))
            }
            (StrategyKind::SlidingWindowCounter, &[bucket, prev, cur]) => {
                AnyStrategy::Sliding(SlidingWindow::from_parts(bucket, prev, cur))
            }
            (StrategyKind::Gcra, &[tat]) => AnyStrategy::Gcra(Gcra::from_tat(ts(tat))),
            (StrategyKind::MovingWindow, parts) => {
                let log: VecDeque<Entry> = parts
                    .chunks_exact(2)
                    .map(|p| Entry {
                        at: ts(p[0]),
                        cost: p[1],
                    })
                    .collect();
                let ordered = log
                    .iter()
                    .zip(log.iter().skip(1))
                    .all(|(a, b)| a.at <= b.at);
                // (An entry inside the log may hold 0: emptied by a refund, dropped when it
                // reaches an end.)
                if !ordered {
                    return Err("a moving-window log out of order".into());
                }
                AnyStrategy::Moving(MovingWindow::with_log(log))
            }
            _ => return Err("a value of the wrong length".into()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use ratekeeper_core::{Duration, Unit};

    use super::*;

    #[test]
    fn states_survive_a_round_trip_and_bad_values_are_errors() {
        let limit = Limit::per(5, Unit::Minute);
        let t = Timestamp::from_secs(1_700_000_000);
        for &kind in StrategyKind::ALL {
            let mut s = State::fresh(kind).unwrap();
            for i in 0..3 {
                assert!(s.hit(&limit, t.saturating_add(Duration::from_secs(i)), 1));
            }
            let back = State::decode(kind, &s.encode()).unwrap();
            assert_eq!(back.encode(), s.encode(), "{kind}");
            assert_eq!(back.stats(&limit, t).remaining, 2, "{kind}");
            let other = StrategyKind::ALL
                .iter()
                .copied()
                .find(|k| *k != kind)
                .unwrap();
            assert!(State::decode(other, &s.encode()).is_err());
            let mut cut = s.encode();
            cut.pop();
            assert!(State::decode(kind, &cut).is_err());
            assert!(State::decode(kind, b"").is_err());
            assert!(State::decode(kind, b"x").is_err());
        }
        let mut unordered = vec![FORMAT, b'm'];
        for n in [5u64, 1, 3, 0] {
            unordered.extend_from_slice(&n.to_le_bytes());
        }
        assert!(State::decode(StrategyKind::MovingWindow, &unordered).is_err());
    }
}
