//! Route ids for requests that carry no `MatchedPath` (a service that is not an axum router,
//! or the layer outside the router): patterns registered with the layer, in axum's syntax
//! (`/users/{id}`, `/files/{*path}`), matched most specific first; anything else is the
//! catch-all [`CATCH_ALL`].

use std::{collections::HashMap, sync::Arc};

/// The route id of requests that match no route.
pub const CATCH_ALL: &str = "*";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Exact(String),
    Param,
    Rest,
}

#[derive(Clone, Debug)]
struct Pattern {
    id: Arc<str>,
    segments: Vec<Segment>,
}

impl Pattern {
    fn parse(pattern: &str) -> Self {
        let segments = pattern
            .trim_start_matches('/')
            .split('/')
            .map(|s| {
                if s.starts_with("{*") && s.ends_with('}') {
                    Segment::Rest
                } else if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Exact(s.to_owned())
                }
            })
            .collect();
        Self {
            id: pattern.into(),
            segments,
        }
    }

    /// How specifically `path` matches: exact segments before parameters before a rest.
    fn score(&self, path: &[&str]) -> Option<(usize, usize)> {
        let mut exact = 0;
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Rest => return (path.len() > i).then_some((exact, 0)),
                Segment::Param if path.get(i).is_some_and(|p| !p.is_empty()) => {}
                Segment::Exact(s) if path.get(i) == Some(&s.as_str()) => exact += 1,
                _ => return None,
            }
        }
        (path.len() == self.segments.len()).then_some((exact, 1))
    }
}

/// The registered patterns.
#[derive(Clone, Debug, Default)]
pub(crate) struct Routes {
    exact: HashMap<String, Arc<str>>,
    patterns: Vec<Pattern>,
}

impl Routes {
    pub(crate) fn add(&mut self, pattern: &str) {
        if pattern.contains('{') {
            self.patterns.push(Pattern::parse(pattern));
        } else {
            self.exact.insert(pattern.to_owned(), pattern.into());
        }
    }

    /// Every registered pattern.
    pub(crate) fn patterns(&self) -> impl Iterator<Item = &str> {
        self.exact
            .keys()
            .map(String::as_str)
            .chain(self.patterns.iter().map(|p| &*p.id))
    }

    /// The pattern that serves `path`, if any.
    pub(crate) fn find(&self, path: &str) -> Option<Arc<str>> {
        if let Some(id) = self.exact.get(path) {
            return Some(Arc::clone(id));
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.patterns
            .iter()
            .filter_map(|p| p.score(&parts).map(|s| (s, p)))
            .max_by_key(|(s, _)| *s)
            .map(|(_, p)| Arc::clone(&p.id))
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
}
