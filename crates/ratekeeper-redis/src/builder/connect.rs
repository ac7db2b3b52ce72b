//! The connection of each kind of target: one node, a cluster, a primary behind sentinels.

use core::time::Duration;
use std::sync::Arc;

use ratekeeper_storage::StorageError;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr,
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    sentinel::{SentinelClientBuilder, SentinelServerType},
};

use super::{RedisStorageBuilder, config};
use crate::{
    connection::{Connection, Reconnecting},
    pipe::{self, Endpoint},
};

fn bad(e: redis::RedisError) -> StorageError {
    config(e.to_string())
}

impl RedisStorageBuilder {
    /// One node: over plain TCP on this crate's pipelined connection, made anew when it
    /// breaks; over TLS (with a CA of its own when one is given), a Unix socket or with the
    /// `tokio` feature behind the redis crate's connection manager, which reconnects.
    pub(super) fn connect_single(&self, addr: &ConnectionAddr) -> Result<Connection, StorageError> {
        // With the `tokio` feature the redis crate's connection stays, so that a store opened
        // inside a tokio runtime is driven by it.
        if let (ConnectionAddr::Tcp(host, port), None, false) =
            (addr, &self.ca_certificate, cfg!(feature = "tokio"))
        {
            let to = Endpoint {
                host: host.clone(),
                port: *port,
                username: self.username.clone(),
                password: self.password.clone(),
                db: self.db,
                connect_timeout: self.connect_timeout,
                response_timeout: self.response_timeout,
            };
            return Ok(Connection::Pipe(Reconnecting::new(move || {
                let to = to.clone();
                Box::pin(async move { pipe::open(&to).await })
            })));
        }
        let info = self.connection_info(addr)?;
        let client = match &self.ca_certificate {
            None => Client::open(info).map_err(bad)?,
            #[cfg(feature = "tls")]
            Some(pem) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )
            .map_err(bad)?,
            #[cfg(not(feature = "tls"))]
            Some(_) => {
                return Err(config(
                    "a CA certificate needs TLS support: enable the `tls` feature of the `ratekeeper` crate (of ratekeeper-redis if you depend on it directly)",
                ));
            }
        };
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        Ok(Connection::Single(
            ConnectionManager::new_lazy_with_config(client, manager).map_err(bad)?,
        ))
    }

    /// A cluster found from `nodes` (database 0 only).
    pub(super) fn connect_cluster(
        &self,
        nodes: &[ConnectionAddr],
    ) -> Result<Connection, StorageError> {
        if self.db != 0 {
            return Err(config("a cluster has only database 0"));
        }
        let infos = nodes
            .iter()
            .map(|a| self.connection_info(a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = ClusterClientBuilder::new(infos)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.response_timeout)
            .retries(2);
        if let Some(p) = &self.password {
            builder = builder.password(p);
        }
        if let Some(u) = &self.username {
            builder = builder.username(u);
        }
        let client = builder.build().map_err(bad)?;
        Ok(Connection::Cluster(Reconnecting::new(move || {
            let client = client.clone();
            Box::pin(async move { client.get_async_connection().await })
        })))
    }

    /// The primary of `service` as `sentinels` name it, asked again on each reconnection.
    pub(super) fn connect_sentinel(
        &self,
        sentinels: &[ConnectionAddr],
        service: &str,
    ) -> Result<Connection, StorageError> {
        let mut builder =
            SentinelClientBuilder::new(sentinels.to_vec(), service, SentinelServerType::Master)
                .map_err(bad)?
                .set_client_to_redis_db(self.db);
        if let Some(p) = &self.password {
            builder = builder
                .set_client_to_redis_password(p)
                .set_client_to_sentinel_password(p);
        }
        if let Some(u) = &self.username {
            builder = builder
                .set_client_to_redis_username(u)
                .set_client_to_sentinel_username(u);
        }
        let client = Arc::new(futures::lock::Mutex::new(builder.build().map_err(bad)?));
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        Ok(Connection::Sentinel(Reconnecting::new(move || {
            let (client, cfg) = (Arc::clone(&client), cfg.clone());
            Box::pin(async move {
                client
                    .lock()
                    .await
                    .get_async_connection_with_config(&cfg)
                    .await
            })
        })))
    }
}
