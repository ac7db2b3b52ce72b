//! A storage URI's password never appears in an error or a `Debug` form, whatever is wrong
//! with the URI and whichever layer reports it.

use std::sync::Arc;

use ratekeeper_core::SystemClock;
use ratekeeper_decision::Limiter;
use ratekeeper_redis::{RedisStorage, RedisStorageBuilder};
use ratekeeper_storage::{StorageUri, redact_uri};
use ratekeeper_stores::Stores;

const SECRET: &str = "hunter2-Xy9";

fn assert_hidden(what: &str, shown: &str) {
    assert!(
        !shown.contains(SECRET),
        "{what} shows the password: {shown}"
    );
    // Not even a recognisable piece of it.
    assert!(
        !shown.contains("hunter2"),
        "{what} shows part of the password: {shown}"
    );
    assert!(
        !shown.contains("Xy9"),
        "{what} shows part of the password: {shown}"
    );
}

/// Every URI here is wrong in one way, and carries the password.
fn broken_uris() -> Vec<String> {
    let p = SECRET;
    let mut uris = vec![
        // The parser's errors.
        format!("redis://user:{p}%zz@cache:6379"),
        format!("redis://:{p}@cache:0"),
        format!("redis://:{p}@[::1"),
        format!("redis://:{p}@:6379"),
        // A password with an unencoded `/` (the rest lands in the path) or `@`.
        format!("redis://:{p}/more@cache:6379"),
        format!("redis://:hunter2/Xy9@cache:6379"),
        format!("redis://:hunter2@Xy9@cache:6379/x"),
        // The Redis builder's errors.
        format!("redis://:{p}@"),
        format!("redis://:{p}@h1,h2"),
        format!("redis+sentinel://:{p}@h1:26379"),
        format!("redis+unix://:{p}@"),
        format!("redis://:{p}@cache/notanumber"),
        format!("redis://:{p}@cache?bogus=1"),
        format!("redis://:{p}@cache?socket_timeout=soon"),
        format!("redis://:{p}@cache?time=never"),
        format!("redis://:{p}@cache?ssl_ca_certs=/nowhere.pem"),
        // The decision layer's: an unknown scheme, a memory URI with a host.
        format!("mongodb://:{p}@cache"),
        format!("memory://:{p}@cache"),
    ];
    uris.extend([
        // memcached has no authentication: refused, without quoting it.
        format!("memcached://app:{p}@cache:11211"),
        format!("memcached://:{p}@cache:11211"),
        format!("memcached://:{p}@cache:11211?timeout=soon"),
        format!("memcached://:{p}@cache:0"),
    ]);
    uris
}

#[test]
fn no_error_path_shows_the_password() {
    for uri in broken_uris() {
        let what = redact_uri(&uri);
        if let Err(e) = uri.parse::<StorageUri>() {
            assert_hidden(&format!("StorageUri {what}"), &format!("{e} {e:?}"));
        }
        if let Err(e) = RedisStorageBuilder::from_uri(&uri) {
            assert_hidden(
                &format!("RedisStorageBuilder {what}"),
                &format!("{e} {e:?}"),
            );
        }
        let e = Stores::new()
            .open_uri(&uri, Arc::new(SystemClock))
            .expect_err(&what);
        assert_hidden(&format!("Stores::open_uri {what}"), &format!("{e} {e:?}"));
        let e = Limiter::builder()
            .stores(Stores::new())
            .storage_uri(&uri)
            .build()
            .expect_err(&what);
        assert_hidden(&format!("Limiter::build {what}"), &format!("{e} {e:?}"));
    }
}

#[test]
fn debug_forms_hide_the_password() {
    let uri = format!("redis://app:{SECRET}@127.0.0.1:1/2?prefix=x");
    let parsed: StorageUri = uri.parse().unwrap();
    assert_eq!(parsed.password.as_deref(), Some(SECRET), "parsed for use");
    assert_hidden("StorageUri", &format!("{parsed:?}"));
    let builder = RedisStorageBuilder::from_uri(&uri).unwrap();
    assert_hidden("RedisStorageBuilder", &format!("{builder:?}"));
    // Building never connects, so this works with nothing listening.
    let store = RedisStorage::from_uri(&uri).unwrap();
    assert_hidden("RedisStorage", &format!("{store:?}"));
    let builder = Limiter::builder().stores(Stores::new()).storage_uri(&uri);
    assert_hidden("LimiterBuilder", &format!("{builder:?}"));
    let limiter = builder.build().unwrap();
    assert_hidden("Limiter", &format!("{limiter:?}"));
    assert_eq!(redact_uri(&uri), "redis://***@127.0.0.1:1/2?prefix=x");
}

#[test]
fn a_store_that_cannot_connect_does_not_show_the_password() {
    // Nothing listens on port 1: the error comes from the connection attempt.
    let store = RedisStorage::from_uri(&format!(
        "redis://app:{SECRET}@127.0.0.1:1?socket_connect_timeout=0.2"
    ))
    .unwrap();
    let batch = [ratekeeper_storage::Charge::new(
        ratekeeper_storage::Key::new("ip", "1"),
        "1 per minute".parse().unwrap(),
        ratekeeper_core::StrategyKind::FixedWindow,
        1,
    )];
    let e = smol::block_on(ratekeeper_storage::Storage::apply(
        &store,
        ratekeeper_storage::Op::Hit,
        &batch,
    ))
    .unwrap_err();
    assert_hidden("a connection error", &format!("{e} {e:?}"));
}
