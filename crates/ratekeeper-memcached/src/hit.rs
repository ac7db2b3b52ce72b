//! A hit under compare-and-swap: reserve every charge that fits, item by item, retrying the
//! items another request changed meanwhile; on a rejection give the reservations back and make
//! the rejection's own charges.

use std::borrow::Cow;

use ratekeeper_core::Timestamp;
use ratekeeper_storage::{Charge, StorageError};

use crate::{
    state::State,
    store::{Item, MemcachedStorage, Token, Written, contention},
};

impl MemcachedStorage {
    /// Whether each charge of `item` fits its state: alone, and with the item's other charges.
    pub(crate) fn fits(item: &Item, batch: &[Charge], now: Timestamp, allowed: &mut [bool]) {
        let state = renewed(item, batch, now);
        let together = item
            .charges
            .iter()
            .map(|&i| batch[i].cost)
            .fold(0, u64::saturating_add);
        for &i in &item.charges {
            let c = &batch[i];
            allowed[i] = state.fits(&item.limit, now, c.room())
                && (together <= c.room() || state.fits(&item.limit, now, together));
        }
    }

    /// A hit: every item with a cost is written at once when all charges fit; items that
    /// changed meanwhile are read again and retried; when a charge no longer fits, what was
    /// reserved is refunded and the rejection's own charges are made.
    pub(crate) async fn hit(
        &self,
        items: &mut [Item],
        batch: &[Charge],
        now: Timestamp,
        allowed: &mut [bool],
    ) -> Result<bool, StorageError> {
        let mut reserved: Vec<usize> = Vec::new();
        let fits = match self
            .reserve(items, batch, now, allowed, &mut reserved)
            .await
        {
            Ok(fits) => fits,
            Err(e) => {
                // What was stored on the servers that answered is given back.
                self.refund_reserved(items, &reserved, batch, now).await;
                return Err(e);
            }
        };
        if fits {
            return Ok(true);
        }
        // Rejected: give back what was reserved, then charge what a rejection charges, each
        // where it has room.
        for &r in &reserved {
            self.give_back(&mut items[r], batch, now).await?;
        }
        for (_, item) in items
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| !reserved.contains(i))
        {
            self.give_up_renewed(item, batch, now).await?;
        }
        for item in items.iter_mut() {
            self.charge_rejection(item, batch, now).await?;
        }
        Ok(false)
    }

    /// Checks every item and writes the charges of those with a cost, until every charge is
    /// stored (`Ok(true)`) or one no longer fits (`Ok(false)`); the items reserved so far are
    /// pushed on `reserved`, also when it fails.
    async fn reserve(
        &self,
        items: &mut [Item],
        batch: &[Charge],
        now: Timestamp,
        allowed: &mut [bool],
        reserved: &mut Vec<usize>,
    ) -> Result<bool, StorageError> {
        let costs = |item: &Item| item.charges.iter().any(|&i| batch[i].cost > 0);
        let mut pending: Vec<usize> = (0..items.len()).filter(|&i| costs(&items[i])).collect();
        // Checked: every item first, then those read again after a conflict (a reserved item
        // holds this batch's own charge and is not checked again).
        let mut check: Vec<usize> = (0..items.len()).collect();
        let mut conflicts = 0;
        loop {
            for &c in &check {
                Self::fits(&items[c], batch, now, allowed);
            }
            let fits = allowed.iter().all(|a| *a);
            if !fits || pending.is_empty() {
                return Ok(fits);
            }
            let next: Vec<State> = pending
                .iter()
                .map(|&p| charged(&items[p], batch, now))
                .collect();
            let writes: Vec<(&Item, &State)> =
                pending.iter().map(|&p| &items[p]).zip(&next).collect();
            let Written { stored, failed } = self.write(&writes, now).await;
            let mut conflicted = Vec::new();
            for ((p, state), ok) in pending.iter().copied().zip(next).zip(stored) {
                if ok {
                    items[p].state = state;
                    items[p].token = Token::Stale;
                    reserved.push(p);
                } else {
                    conflicted.push(p);
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            conflicts += conflicted.len();
            if conflicts > self.inner.faults.max_conflicts {
                return Err(contention());
            }
            // The items that changed under us are read again; the reserved ones keep the state
            // this batch wrote (what it may refund is its own).
            let mut again: Vec<&mut Item> = items
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| conflicted.contains(i))
                .map(|(_, it)| it)
                .collect();
            self.load(&mut again).await?;
            check.clone_from(&conflicted);
            pending = conflicted;
        }
    }

    /// Gives back this batch's charges on `item`, reserved at `now`.
    async fn give_back(
        &self,
        item: &mut Item,
        batch: &[Charge],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let charges: Vec<u64> = item.charges.iter().map(|&i| batch[i].cost).collect();
        let limit = item.limit;
        self.update(item, now, |s| {
            for &cost in &charges {
                s.refund(&limit, now, cost, Some(now));
            }
            true
        })
        .await
    }

    /// On a rejection, for an item that was not written: the earlier charges its renewals name
    /// are given back all the same, as every store does.
    async fn give_up_renewed(
        &self,
        item: &mut Item,
        batch: &[Charge],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let renewals: Vec<(u64, Timestamp)> = item
            .charges
            .iter()
            .filter_map(|&i| batch[i].charged_at.map(|at| (batch[i].cost, at)))
            .collect();
        if renewals.is_empty() {
            return Ok(());
        }
        let limit = item.limit;
        self.update(item, now, |s| {
            for &(cost, at) in &renewals {
                s.refund(&limit, now, cost, Some(at));
            }
            true
        })
        .await
    }

    /// What a rejection charges on `item` (its charges' `on_reject`), each where it has room.
    async fn charge_rejection(
        &self,
        item: &mut Item,
        batch: &[Charge],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let on_reject: Vec<u64> = item
            .charges
            .iter()
            .map(|&i| batch[i].on_reject())
            .filter(|&n| n > 0)
            .collect();
        if on_reject.is_empty() {
            return Ok(());
        }
        let limit = item.limit;
        self.update(item, now, |s| {
            let mut changed = false;
            for &n in &on_reject {
                changed |= s.fits(&limit, now, n) && s.hit(&limit, now, n);
            }
            changed
        })
        .await
    }

    /// Best effort after a failure: gives back what the batch reserved (logged when it
    /// cannot: the reservation holds until its window passes).
    async fn refund_reserved(
        &self,
        items: &mut [Item],
        reserved: &[usize],
        batch: &[Charge],
        now: Timestamp,
    ) {
        for &r in reserved {
            let item = &mut items[r];
            if let Err(e) = self.give_back(item, batch, now).await {
                tracing::warn!(target: "ratekeeper::memcached", item = %item.name, error = %e,
                    "a reservation could not be refunded: it holds quota until its window passes");
            }
        }
    }
}

/// `item`'s state with every charge of the batch on it made (each was tested to fit).
fn charged(item: &Item, batch: &[Charge], now: Timestamp) -> State {
    let mut s = renewed(item, batch, now).into_owned();
    for &i in &item.charges {
        let _charged = s.hit(&item.limit, now, batch[i].cost);
        debug_assert!(_charged || batch[i].cost == 0, "a tested charge fits");
    }
    s
}

/// `item`'s state with the earlier charges its renewals name given back (a hit's charge with
/// `charged_at` renews the charge made then: see `Charge::charged_at`).
fn renewed<'i>(item: &'i Item, batch: &[Charge], now: Timestamp) -> Cow<'i, State> {
    if item.charges.iter().all(|&i| batch[i].charged_at.is_none()) {
        return Cow::Borrowed(&item.state);
    }
    let mut s = item.state.clone();
    for &i in &item.charges {
        let c = &batch[i];
        if c.charged_at.is_some() {
            s.refund(&item.limit, now, c.cost, c.charged_at);
        }
    }
    Cow::Owned(s)
}
