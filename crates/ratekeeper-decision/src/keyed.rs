//! Limits counted by a key function of their own, beside a scope's other limits (Flask-Limiter's
//! `key_func=` on one limit): `RoutePolicy::limit_by` and the builder's `*_limits_by`.

use crate::{
    error::ConfigError,
    key::KeyFunction,
    policy::{LimitSet, parse_set},
};

/// One group of limits and the key function that counts them, parsed.
#[derive(Clone)]
pub(crate) struct Keyed {
    pub(crate) limits: LimitSet,
    pub(crate) key: KeyFunction,
    /// The scope that keeps this group's counters apart from its scope's other limits (the
    /// group's place among them: `by1`, `by2`...), even where both count the same identity.
    pub(crate) tag: String,
}

/// Parses each group's limit string; errors name the scope (`context`) and the group.
pub(crate) fn parse_keyed(
    context: &str,
    groups: &[(String, KeyFunction)],
) -> Result<Vec<Keyed>, ConfigError> {
    groups
        .iter()
        .enumerate()
        .map(|(i, (text, key))| {
            Ok(Keyed {
                limits: parse_set(&format!("{context} by {key:?}"), text)?,
                key: key.clone(),
                tag: format!("by{}", i + 1),
            })
        })
        .collect()
}

/// The limits of `groups`, in order.
pub(crate) fn limits_of(groups: &[Keyed]) -> impl Iterator<Item = ratekeeper_core::Limit> + '_ {
    groups.iter().flat_map(|g| g.limits.iter().copied())
}
