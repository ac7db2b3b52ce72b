//! Deleting counters without stalling Redis: the node's keyspace is paged through with `SCAN
//! MATCH` from the client, one short command at a time, and only names of this store's counter
//! shape are unlinked (`UNLINK` frees their memory off the main thread). A script that scanned
//! the whole keyspace in one call held every other client for as long as it ran.

use redis::{RedisResult, Value, cmd, from_redis_value};

use crate::{
    connection::{Connection, Node},
    keys,
};

/// How many keys one `SCAN` call visits: short enough that no other command waits on it.
const PAGE: usize = 1000;

/// Deletes this store's counters whose names match `pattern` on the node that holds `key`'s
/// slot (every client's counters share the slot of its identity). Answers how many went.
pub(crate) async fn on_node_of(
    conn: &Connection,
    prefix: &str,
    key: &str,
    pattern: &str,
) -> RedisResult<u64> {
    scan_node(conn, Node::OfKey(key), prefix, pattern).await
}

/// Deletes every counter of this store (prefix `prefix`), on every master.
pub(crate) async fn everywhere(conn: &Connection, prefix: &str) -> RedisResult<u64> {
    let pattern = format!("{prefix}:{{*");
    let masters = conn.masters().await?;
    if masters.is_empty() {
        return scan_node(conn, Node::OfKey(prefix), prefix, &pattern).await;
    }
    let mut n = 0;
    for (host, port) in &masters {
        n += scan_node(conn, Node::At(host, *port), prefix, &pattern).await?;
    }
    Ok(n)
}

async fn scan_node(
    conn: &Connection,
    node: Node<'_>,
    prefix: &str,
    pattern: &str,
) -> RedisResult<u64> {
    let mut cursor = 0u64;
    let mut deleted = 0;
    loop {
        let mut scan = cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(PAGE);
        let (next, names): (u64, Vec<Vec<u8>>) = from_redis_value(conn.on_node(node, scan).await?)?;
        let mut unlink = cmd("UNLINK");
        let mut any = false;
        for name in names.iter().filter(|n| keys::is_counter(prefix, n)) {
            unlink.arg(name);
            any = true;
        }
        if any {
            // On a cluster the redis crate splits a multi-key UNLINK by slot.
            let gone: Value = conn.query(&unlink).await?;
            deleted += from_redis_value::<u64>(gone)?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
