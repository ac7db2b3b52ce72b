//! A batch over two servers that fails part-way: a server that dies between the batch's reads
//! and its writes, and writes that keep conflicting past the store's limit. Either way the
//! batch is an error, and what it had reserved on the other server is given back.

mod common;

use core::sync::atomic::{AtomicBool, Ordering};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    sync::{Arc, Mutex},
};

use common::{T0, names_on};
use ratekeeper_core::{Limit, ManualClock, StrategyKind};
use ratekeeper_memcached::{MemcachedStorage, MemcachedStorageBuilder};
use ratekeeper_storage::{Charge, Key, Storage, StorageError};
use ratekeeper_test_support::memcached::MemcachedServer;

fn charge(client: &str) -> Charge {
    Charge::new(
        Key::new("ip", client),
        "10 per minute".parse::<Limit>().unwrap(),
        StrategyKind::FixedWindow,
        1,
    )
}

/// Two servers, a store over both built by `configure`, and two clients whose counters live
/// on different servers, each hit once: `(store, servers, clients, the port of the second
/// client's server)`.
struct Rig {
    store: MemcachedStorage,
    servers: [Arc<Mutex<MemcachedServer>>; 2],
    clients: (String, String),
    /// The index in `servers` of the second client's server.
    second: usize,
    /// The names of the second client's counters there.
    second_names: Vec<String>,
}

fn rig(
    prefix: &str,
    configure: impl FnOnce(
        MemcachedStorageBuilder,
        [Arc<Mutex<MemcachedServer>>; 2],
    ) -> MemcachedStorageBuilder,
) -> Rig {
    let servers = [
        Arc::new(Mutex::new(MemcachedServer::start())),
        Arc::new(Mutex::new(MemcachedServer::start())),
    ];
    let ports = [0, 1].map(|i| servers[i].lock().unwrap().port());
    let url = format!("memcached://127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1]);
    let builder = MemcachedStorage::builder_from_uri(&url)
        .unwrap()
        .prefix(prefix)
        .clock(Arc::new(ManualClock::new(T0)))
        .ttl_grace(core::time::Duration::from_secs(3600));
    let store = configure(builder, servers.clone()).build().unwrap();
    // Where a client's counter lives: hit it, then look (metadump, which runs as a crawler
    // job, can miss an item just stored: look until it shows).
    let server_of = |client: &str| {
        assert!(
            smol::block_on(store.hit(&[charge(client)]))
                .unwrap()
                .allowed
        );
        let encoded = format!("ip:{client}:");
        for _ in 0..200 {
            for (i, port) in ports.iter().enumerate() {
                let names: Vec<String> = names_on(*port)
                    .into_iter()
                    .filter(|n| n.contains(&encoded))
                    .collect();
                if !names.is_empty() {
                    return (i, names);
                }
            }
            std::thread::sleep(core::time::Duration::from_millis(10));
        }
        panic!("{client}'s counter is on neither server");
    };
    let first = "c0".to_owned();
    let (on, _) = server_of(&first);
    let (second, second_names) = (1..64)
        .map(|j| format!("c{j}"))
        .find_map(|c| {
            let (server, names) = server_of(&c);
            (server != on).then_some((c, names))
        })
        .expect("a client on the other server");
    Rig {
        second: 1 - on,
        second_names,
        store,
        servers,
        clients: (first, second),
    }
}

fn remaining(store: &MemcachedStorage, client: &str) -> u64 {
    smol::block_on(store.test(&[charge(client)]))
        .unwrap()
        .statuses[0]
        .remaining
}

/// The second client's server dies after the batch read both counters and before it wrote
/// them: the write to the first server went through, and is given back.
#[test]
fn a_server_dying_mid_batch_leaves_the_other_as_it_was() {
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = Arc::clone(&armed);
    let victim: Arc<Mutex<Option<Arc<Mutex<MemcachedServer>>>>> = Arc::default();
    let target = Arc::clone(&victim);
    let r = rig("dies", |b, _| {
        b.before_write(move || {
            if trigger.swap(false, Ordering::SeqCst)
                && let Some(server) = target.lock().unwrap().as_ref()
            {
                server.lock().unwrap().kill();
            }
        })
    });
    let (a, b) = (&r.clients.0, &r.clients.1);
    assert_eq!(remaining(&r.store, a), 9);
    *victim.lock().unwrap() = Some(Arc::clone(&r.servers[r.second]));
    armed.store(true, Ordering::SeqCst);
    let failed = smol::block_on(r.store.hit(&[charge(a), charge(b)]));
    assert!(failed.is_err(), "{failed:?}");
    r.servers[r.second].lock().unwrap().restart();
    assert_eq!(
        remaining(&r.store, a),
        9,
        "the reservation on the live server came back"
    );
    assert_eq!(remaining(&r.store, b), 10, "the restarted server is empty");
}

/// The second client's counter changes under every write (another writer), past the store's
/// conflict limit: the batch fails as contention, and the first client's reservation is
/// given back.
#[test]
fn contention_past_the_limit_is_an_error_and_refunds_the_batch() {
    let armed = Arc::new(AtomicBool::new(false));
    let trigger = Arc::clone(&armed);
    let target: Arc<Mutex<(u16, Vec<String>)>> = Arc::default();
    let touch = Arc::clone(&target);
    let r = rig("busy", |b, _| {
        b.max_conflicts(0).before_write(move || {
            if trigger.swap(false, Ordering::SeqCst) {
                let (port, names) = &*touch.lock().unwrap();
                touch_counters(*port, names);
            }
        })
    });
    let (a, b) = (&r.clients.0, &r.clients.1);
    let port = r.servers[r.second].lock().unwrap().port();
    *target.lock().unwrap() = (port, r.second_names.clone());
    armed.store(true, Ordering::SeqCst);
    let failed = smol::block_on(r.store.hit(&[charge(a), charge(b)]));
    match failed {
        Err(e @ StorageError::Protocol { .. }) => {
            assert!(e.to_string().contains("too many conflicting writes"), "{e}");
        }
        other => panic!("expected contention, got {other:?}"),
    }
    assert_eq!(remaining(&r.store, a), 9, "the reservation came back");
    assert_eq!(
        remaining(&r.store, b),
        9,
        "the conflicting write was never made"
    );
}

/// Rewrites the items `names` on the server at `port` with their own values: the data stays,
/// the CAS tokens change, so a batch that read them before conflicts.
fn touch_counters(port: u16, names: &[String]) {
    assert!(!names.is_empty(), "nothing to touch");
    for name in names {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(format!("get {name}\r\n").as_bytes())
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        reader.read_line(&mut head).unwrap();
        let len = head
            .strip_prefix("VALUE ")
            .and_then(|h| h.split_whitespace().nth(2))
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("get {name}: {head:?}"));
        let mut data = vec![0; len + 2];
        reader.read_exact(&mut data).unwrap();
        data.truncate(len);
        let mut set = format!("set {name} 0 3600 {len}\r\n").into_bytes();
        set.extend_from_slice(&data);
        set.extend_from_slice(b"\r\n");
        stream.write_all(&set).unwrap();
        let mut rest = String::new();
        reader.read_line(&mut rest).unwrap(); // END
        let mut stored = String::new();
        reader.read_line(&mut stored).unwrap();
        assert_eq!(stored.trim(), "STORED", "set {name}");
    }
}
