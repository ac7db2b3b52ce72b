//! What a request's storage keys are made of: each scope's encoded path, the route, the
//! method where methods count apart, a keyed group's tag.

use std::borrow::Cow;

use ratekeeper_storage::ScopePath;

/// `method` in upper case, borrowed when it already is (it usually is).
pub(super) fn uppercase(method: &str) -> Cow<'_, str> {
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        Cow::Owned(method.to_ascii_uppercase())
    } else {
        Cow::Borrowed(method)
    }
}

/// The encoded prefix of each scope's keys: the limiter's prefix and the scope's name.
pub(crate) struct ScopePaths {
    pub(super) app: ScopePath,
    pub(super) route: ScopePath,
    pub(super) shared: ScopePath,
    pub(super) default: ScopePath,
    pub(super) guard: ScopePath,
    pub(super) meta: ScopePath,
    pub(super) fallback: ScopePath,
    pub(super) in_flight: ScopePath,
}

impl ScopePaths {
    pub(crate) fn new(prefix: &str) -> Self {
        let path = |scope: &str| ScopePath::new(&[prefix, scope]);
        Self {
            app: path("app"),
            route: path("route"),
            shared: path("shared"),
            default: path("default"),
            guard: path("guard"),
            meta: path("meta"),
            fallback: path("fallback"),
            in_flight: path("inflight"),
        }
    }
}

/// What the storage keys of a request are built from besides the identity and the scopes'
/// paths: the method, for a route that counts methods apart.
#[derive(Clone, Copy)]
pub(super) struct KeyParts<'a> {
    pub(super) method: Option<&'a str>,
}

impl<'a> KeyParts<'a> {
    /// The scopes of a key under `path` (one of `paths`), then `name` (a shared scope's).
    pub(super) fn of(self, path: &'a ScopePath, name: Option<&'a str>) -> ScopeParts<'a> {
        let mut parts = ScopeParts {
            path,
            items: ["", "", ""],
            len: 0,
        };
        if let Some(name) = name {
            parts.items[0] = name;
            parts.len = 1;
        }
        parts
    }

    /// The scopes of a key counted per route (the route, default and guard scopes): `path`,
    /// the route, and the method when methods count apart.
    pub(super) fn of_route(self, path: &'a ScopePath, route: &'a str) -> ScopeParts<'a> {
        let mut parts = self.of(path, Some(route));
        if let Some(method) = self.method {
            parts.items[1] = method;
            parts.len = 2;
        }
        parts
    }
}

/// The scopes of one key: an encoded path, then up to three scopes to encode.
#[derive(Clone, Copy)]
pub(super) struct ScopeParts<'a> {
    path: &'a ScopePath,
    items: [&'a str; 3],
    len: usize,
}

impl<'a> ScopeParts<'a> {
    /// These scopes, then `tag` (a keyed group's). There is always room: a key has at most
    /// two scopes of its own (a route and a method, or a shared scope's name).
    pub(super) fn tagged(mut self, tag: &'a str) -> Self {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = tag;
            self.len += 1;
        }
        self
    }

    pub(super) fn as_list(&self) -> (&'a ScopePath, &[&'a str]) {
        (self.path, &self.items[..self.len])
    }
}
