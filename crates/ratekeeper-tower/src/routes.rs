//! Route ids for requests that carry no `MatchedPath` (a service that is not an axum router,
//! or the layer outside the router): patterns registered with the layer, in axum's syntax
//! (`/users/{id}`, `/files/{*path}`), matched most specific first; anything else is the
//! catch-all [`CATCH_ALL`].

use std::sync::Arc;

/// The route id of requests that match no route.
pub const CATCH_ALL: &str = "*";

/// The registered patterns, in a `matchit` router (axum's own): static segments win over
/// parameters, parameters over a catch-all.
#[derive(Clone, Debug, Default)]
pub(crate) struct Routes {
    router: matchit::Router<Arc<str>>,
    patterns: Vec<Arc<str>>,
}

impl Routes {
    /// Registers `pattern`; again is a no-op. A pattern the router refuses (a parameter that
    /// conflicts with another's name, a catch-all before the end) is reported at `error` and
    /// matches nothing.
    pub(crate) fn add(&mut self, pattern: &str) {
        if self.patterns.iter().any(|p| &**p == pattern) {
            return;
        }
        let id: Arc<str> = pattern.into();
        match self.router.insert(pattern, Arc::clone(&id)) {
            Ok(()) => self.patterns.push(id),
            Err(e) => tracing::error!(
                target: "ratekeeper",
                pattern,
                "a route pattern registered with the rate-limit layer cannot be matched, so its requests count as `*`: {e}"
            ),
        }
    }

    /// Every registered pattern.
    pub(crate) fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| &**p)
    }

    /// The pattern that serves `path`, if any.
    pub(crate) fn find(&self, path: &str) -> Option<Arc<str>> {
        self.router.at(path).ok().map(|m| Arc::clone(m.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_pattern_wins() {
        let mut r = Routes::default();
        for p in [
            "/users/{id}",
            "/users/me",
            "/users/{id}/posts",
            "/files/{*path}",
            "/",
        ] {
            r.add(p);
        }
        let find = |p: &str| r.find(p).map(|s| s.to_string());
        assert_eq!(find("/users/me").as_deref(), Some("/users/me"));
        assert_eq!(find("/users/7").as_deref(), Some("/users/{id}"));
        assert_eq!(find("/users/7/posts").as_deref(), Some("/users/{id}/posts"));
        assert_eq!(find("/files/a/b/c").as_deref(), Some("/files/{*path}"));
        assert_eq!(find("/").as_deref(), Some("/"));
        assert_eq!(find("/users/"), None);
        assert_eq!(find("/nowhere"), None);
    }

    #[test]
    fn a_pattern_registered_twice_or_refused_changes_nothing() {
        let mut r = Routes::default();
        r.add("/users/{id}");
        r.add("/users/{id}");
        // Another name for the same parameter conflicts: refused, the first one stays.
        r.add("/users/{name}");
        r.add("/files/{*rest}/more");
        assert_eq!(r.patterns().collect::<Vec<_>>(), ["/users/{id}"]);
        assert_eq!(r.find("/users/7").as_deref(), Some("/users/{id}"));
        assert_eq!(r.find("/files/a/more"), None);
    }
}
