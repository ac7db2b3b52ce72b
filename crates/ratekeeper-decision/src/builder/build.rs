//! `LimiterBuilder::build`: every setting validated, then assembled into the limiter's parts
//! (one function per part).

use core::sync::atomic::{AtomicBool, AtomicU64};
use std::{collections::HashMap, sync::Arc};

use ratekeeper_core::{Clock, Limit, StrategyKind, SystemClock, Unit};
use ratekeeper_fallback::{FallbackStorage, Mode};
use ratekeeper_memory::MemoryStorage;
use ratekeeper_storage::Storage;

use super::{LimiterBuilder, Members};
use crate::{
    error::ConfigError,
    key::{Addressing, KeyFunction},
    keyed::{limits_of, parse_keyed},
    limiter::{
        Answers, Clients, Compiled, InFlightScopes, Inner, KeyedScopes, Limiter, Routes,
        ScopeOptions, ScopePaths, Scopes,
    },
    network::Network,
    outage::{FallbackScope, Mode as OutageMode, Outage},
    policy::{Exemptions, LimitSet, LimitSource, RoutePolicy, parse_set},
    route::{check_namespace, compile},
    stores,
};

impl LimiterBuilder {
    /// Validates the configuration: every limit string parses (errors name the string and the
    /// byte), the storage can be built, names make sense.
    pub fn build(mut self) -> Result<Limiter, ConfigError> {
        let scopes = self.scopes()?;
        let clock = self.clock.take().unwrap_or_else(|| Arc::new(SystemClock));
        let strategy = self.strategy.unwrap_or(StrategyKind::FixedWindow);
        let (storage, fallback_scope) = self.store(&clock, strategy)?;
        let clients = self.clients()?;
        let headers = self.headers.take().unwrap_or_default();
        headers.names.check().map_err(ConfigError::Invalid)?;
        self.check_key_functions(&clients.key)?;
        let routes = self.routes(&scopes)?;
        check_limits(&*storage, strategy, &scopes, &routes)?;
        Ok(Limiter {
            inner: Arc::new(Inner {
                scopes,
                routes,
                clients,
                answers: Answers {
                    headers,
                    on_breach: self.on_breach,
                    on_breach_response: self.on_breach_response,
                    on_meta_breach: self.on_meta_breach,
                    shadow: self.shadow,
                    shadow_rejections: AtomicU64::new(0),
                },
                strategy,
                storage,
                clock,
                paths: ScopePaths::new(self.prefix.as_deref().unwrap_or("LIMITER")),
                fallback_scope,
                disabled: self.disabled,
                metrics: Default::default(),
            }),
        })
    }

    /// The default, application and meta limits parsed, with their keyed groups and options.
    fn scopes(&mut self) -> Result<Scopes, ConfigError> {
        let defaults_policy = core::mem::take(&mut self.defaults);
        let application_policy = core::mem::take(&mut self.application);
        let defaults = scope_limits("default limits", &defaults_policy)?;
        let application = scope_limits("application limits", &application_policy)?;
        let meta = match &self.meta {
            None => Vec::new().into(),
            Some(text) => parse_set("meta limits", text)?,
        };
        let keyed = KeyedScopes {
            application: parse_keyed("application limits", &application_policy.keyed)?,
            defaults: parse_keyed("default limits", &defaults_policy.keyed)?,
            meta: parse_keyed("meta limits", &self.meta_by)?,
        };
        // (The limiter's other key functions are checked with its own.)
        for (_, key) in defaults_policy
            .keyed
            .iter()
            .chain(&application_policy.keyed)
        {
            check_namespace(key)?;
        }
        // The limits each scope charges, its keyed groups after its own (the plan's order).
        let all = |own: &LimitSet, groups| own.iter().copied().chain(limits_of(groups)).collect();
        Ok(Scopes {
            application_all: all(&application, &keyed.application),
            defaults_all: all(&defaults, &keyed.defaults),
            defaults,
            application,
            meta,
            keyed,
            options: ScopeOptions {
                defaults_cost: defaults_policy.cost,
                defaults_deduct_when: defaults_policy.deduct_when,
                application_per_method: application_policy.per_method,
                application_cost: application_policy.cost,
                application_deduct_when: application_policy.deduct_when,
            },
            defaults_exempt_when: defaults_policy.exempt_when,
            application_exempt_when: application_policy.exempt_when,
            defaults_per_method: defaults_policy.per_method,
            in_flight: InFlightScopes {
                application: application_policy.in_flight,
                defaults: defaults_policy.in_flight,
                lease_secs: self.lease_secs()?,
                any: !(application_policy.in_flight.is_empty()
                    && defaults_policy.in_flight.is_empty()),
            },
        })
    }

    /// The in-flight lease in whole seconds (rounded up, at least 1).
    fn lease_secs(&self) -> Result<u64, ConfigError> {
        let lease = self
            .in_flight_lease
            .unwrap_or(core::time::Duration::from_secs(60));
        let secs = lease.as_secs() + u64::from(lease.subsec_nanos() > 0);
        let secs = secs.max(1);
        match Limit::new(1, secs, Unit::Second) {
            Ok(_) => Ok(secs),
            Err(_) => Err(ConfigError::Invalid(format!(
                "in-flight lease of {secs} s: too long"
            ))),
        }
    }

    /// The store: the one given, or the one the storage URI names (memory by default), behind
    /// the outage policy's fallback store when there is one; and whom in-memory fallback limits
    /// count against.
    fn store(
        &mut self,
        clock: &Arc<dyn Clock + Send + Sync>,
        strategy: StrategyKind,
    ) -> Result<(Arc<dyn Storage>, Option<FallbackScope>), ConfigError> {
        let storage = match (self.storage.take(), self.storage_uri.take()) {
            (Some(storage), _) => storage,
            (None, uri) => {
                let uri = uri.as_deref().unwrap_or("memory://");
                stores::open(uri, self.stores.as_deref(), Arc::clone(clock))?
            }
        };
        let Some(outage) = self.outage.take() else {
            return Ok((storage, None));
        };
        let scope = matches!(outage.mode, OutageMode::Memory(Some(_))).then_some(outage.scope);
        Ok((behind_fallback(storage, outage, clock, strategy)?, scope))
    }

    /// Who is asking: the key function, trusted proxies, client addressing and exemptions.
    fn clients(&mut self) -> Result<Clients, ConfigError> {
        let mut proxy = core::mem::take(&mut self.proxy);
        if let Some(list) = &self.trusted_networks {
            proxy.trusted_networks =
                Network::parse_list(list).map_err(|error| ConfigError::Network {
                    context: "trusted proxy networks",
                    error,
                })?;
        }
        let mut exempt = Vec::new();
        for list in &self.exempt_clients {
            exempt.extend(
                Network::parse_list(list).map_err(|error| ConfigError::Network {
                    context: "exempt clients",
                    error,
                })?,
            );
        }
        let ipv6_prefix = self.ipv6_prefix.unwrap_or(64);
        if ipv6_prefix > 128 {
            return Err(ConfigError::Invalid(format!(
                "ipv6 prefix {ipv6_prefix}: at most 128 bits"
            )));
        }
        Ok(Clients {
            key: self.key.take().unwrap_or_default(),
            proxy,
            addressing: Addressing {
                ipv6_prefix,
                unknown: self.unknown_client,
            },
            warned_unknown_client: AtomicBool::new(false),
            request_filters: core::mem::take(&mut self.request_filters),
            exempt,
        })
    }

    /// Every key function's namespace (the limiter's, the routes' and groups', the meta
    /// limits' keyed groups) is one a key can hold.
    fn check_key_functions(&self, key: &KeyFunction) -> Result<(), ConfigError> {
        let policies = || {
            self.routes
                .iter()
                .map(|(_, _, p)| p)
                .chain(self.groups.iter().map(|(_, p)| p))
        };
        core::iter::once(key)
            .chain(policies().filter_map(|p| p.key.as_ref()))
            .chain(policies().flat_map(|p| &p.keyed).map(|(_, k)| k))
            .chain(self.meta_by.iter().map(|(_, k)| k))
            .try_for_each(check_namespace)
    }

    /// The route table: each route's, method's and group's policy compiled. A member of a group
    /// with a policy of its own keeps it; among prefixes the longest wins.
    fn routes(&mut self, scopes: &Scopes) -> Result<Routes, ConfigError> {
        let compile = |context: &str, policy: RoutePolicy| {
            compile(
                context,
                policy,
                &scopes.application_all,
                &scopes.defaults_all,
            )
        };
        let mut exact = HashMap::new();
        let mut by_method: HashMap<String, Vec<(String, Compiled)>> = HashMap::new();
        for (method, route, policy) in core::mem::take(&mut self.routes) {
            if route.is_empty() {
                return Err(ConfigError::Invalid(
                    "a route policy needs a route id".into(),
                ));
            }
            let context = match &method {
                Some(m) => format!("route {m} {route}"),
                None => format!("route {route}"),
            };
            let compiled = compile(&context, policy)?;
            match method {
                Some(m) => {
                    let methods = by_method.entry(route).or_default();
                    methods.retain(|(other, _)| *other != m);
                    methods.push((m, compiled));
                }
                None => {
                    exact.insert(route, compiled);
                }
            }
        }
        let mut prefixes = Vec::new();
        for (members, policy) in core::mem::take(&mut self.groups) {
            match members {
                Members::Prefix(prefix) if prefix.is_empty() => {
                    return Err(ConfigError::Invalid(
                        "a route group needs a non-empty prefix".into(),
                    ));
                }
                Members::Prefix(prefix) => {
                    let compiled = compile(&format!("group {prefix}*"), policy)?;
                    prefixes.push((prefix, compiled));
                }
                Members::Routes(members) => {
                    let compiled = compile(&format!("group {members:?}"), policy)?;
                    for route in members {
                        exact.entry(route).or_insert_with(|| compiled.clone());
                    }
                }
            }
        }
        prefixes.sort_by_key(|(prefix, _): &(String, Compiled)| core::cmp::Reverse(prefix.len()));
        let fallback = Compiled::new(
            None,
            Vec::new(),
            Vec::new().into(),
            RoutePolicy::new(),
            &scopes.application_all,
            &scopes.defaults_all,
        );
        Ok(Routes {
            exact,
            by_method,
            prefixes,
            fallback,
        })
    }
}

/// The limits of a scope's policy (`context`: "default limits" or "application limits"),
/// refusing the route options that do not apply to a scope.
fn scope_limits(context: &str, policy: &RoutePolicy) -> Result<LimitSet, ConfigError> {
    let unsupported = [
        ("shared", policy.shared.is_some()),
        ("combine_with_defaults", policy.combine),
        ("exempt", policy.exempt != Exemptions::default()),
        ("on_breach", policy.on_breach.is_some()),
        ("on_breach_response", policy.on_breach_response.is_some()),
        ("key", policy.key.is_some()),
        ("guard", policy.guard.is_some()),
        ("settle", policy.settle.is_some()),
        ("shadow", policy.shadow),
        (
            "dynamic",
            matches!(policy.limits, Some(LimitSource::Dynamic(_))),
        ),
    ];
    if let Some((option, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(ConfigError::UnsupportedOption {
            context: context.to_owned(),
            option,
        });
    }
    match &policy.limits {
        None => Ok(Vec::new().into()),
        Some(LimitSource::Text(text)) => parse_set(context, text),
        Some(LimitSource::Set(set)) => Ok(set.clone()),
        Some(LimitSource::Dynamic(_)) => unreachable!("refused above"),
    }
}

/// `storage` behind a fallback store that follows `outage`.
fn behind_fallback(
    storage: Arc<dyn Storage>,
    outage: Outage,
    clock: &Arc<dyn Clock + Send + Sync>,
    strategy: StrategyKind,
) -> Result<Arc<dyn Storage>, ConfigError> {
    let mode = match outage.mode {
        OutageMode::FailOpen => Mode::FailOpen,
        OutageMode::FailClosed => Mode::FailClosed,
        OutageMode::Memory(None) => Mode::same_limits_in_memory(),
        OutageMode::Memory(Some(text)) => Mode::Fallback {
            limits: parse_set("in-memory fallback", &text)?.to_vec(),
            strategy,
        },
    };
    let mut b = FallbackStorage::builder(storage)
        .mode(mode)
        .clock(Arc::clone(clock))
        .secondary(MemoryStorage::builder().clock(Arc::clone(clock)).build());
    if let Some(t) = outage.timeout {
        b = b.timeout(t);
    }
    if let Some(backoff) = outage.backoff {
        b = b.backoff(backoff);
    }
    if let Some(hook) = outage.on_transition {
        b = b.on_transition(move |t| hook(t));
    }
    Ok(Arc::new(b.build()))
}

/// Every limit known now, against the store's own bounds: a limit it cannot count fails
/// here, not on every request.
fn check_limits(
    storage: &dyn Storage,
    strategy: StrategyKind,
    scopes: &Scopes,
    routes: &Routes,
) -> Result<(), ConfigError> {
    let compiled = routes
        .exact
        .values()
        .chain(routes.by_method.values().flatten().map(|(_, c)| c))
        .chain(routes.prefixes.iter().map(|(_, c)| c));
    scopes
        .application_all
        .iter()
        .chain(&scopes.defaults_all)
        .chain(scopes.meta.iter())
        .copied()
        .chain(limits_of(&scopes.keyed.meta))
        .chain(compiled.flat_map(Compiled::static_limits).copied())
        .try_for_each(|limit| {
            storage
                .check_limit(&limit, strategy)
                .map_err(ConfigError::Storage)
        })
}
