//! Broker-wide connection counts and limits (issue 14, floods): Kafka's `ConnectionQuotas`
//! (kafka.network.SocketServer) for `max.connections`, `listener.name.<l>.max.connections`,
//! `max.connections.per.ip` and `max.connections.per.ip.overrides`.
//!
//! Every shard accepts on every listener (SO_REUSEPORT), so the counts are process-wide: the
//! total and per-listener counts are atomics; the per-address counts sit in one map behind a
//! mutex that only accept and close touch (never the request path), and only when a per-address
//! limit is configured.
//!
//! Behaviour, as Kafka's:
//! - at `max.connections` (or the listener's limit) the accept loop of that listener stops
//!   accepting: the connection just accepted waits, unanswered, until a slot frees, and further
//!   ones wait in the kernel's accept backlog (Kafka's `Acceptor` blocks in
//!   `waitForConnectionSlot`; there is no inter-broker listener here to protect);
//! - over `max.connections.per.ip` for its address a connection is closed right after accept
//!   (Kafka's `TooManyConnectionsException`, logged as "Rejected connection from ...").
//!
//! Invariant: every [`ConnectionSlot`] adds one to each count it holds and its drop takes it
//! away again, so the counts are the live connections (asserted on release).

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::config::{BrokerConfig, ConnectionLimits};

/// How often an accept loop waiting for a free connection slot looks again. Slots free on
/// other shards' threads, so there is no local wake-up to wait for; only a listener at its
/// limit polls.
const SLOT_POLL: Duration = Duration::from_millis(5);

static QUOTAS: OnceLock<ConnectionQuotas> = OnceLock::new();

/// The process-wide quotas, built from `config` by the first shard that binds its listeners
/// (every shard has the same configuration). Errors: a host name in
/// `max.connections.per.ip.overrides` that does not resolve.
pub fn init(config: &BrokerConfig) -> Result<&'static ConnectionQuotas, String> {
    if let Some(quotas) = QUOTAS.get() {
        return Ok(quotas);
    }
    let listeners: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
    let quotas = ConnectionQuotas::new(&config.connection_limits, &listeners)?;
    Ok(QUOTAS.get_or_init(|| quotas))
}

/// Broker-wide connection counts and their limits.
pub struct ConnectionQuotas {
    max_connections: i64,
    total: AtomicI64,
    /// Per listener, in `listeners` order: (count, limit).
    listeners: Vec<(AtomicI64, i64)>,
    max_connections_per_ip: i64,
    per_ip_overrides: HashMap<IpAddr, i64>,
    /// Live connections per address; `None` when no per-address limit is configured.
    per_ip: Option<Mutex<HashMap<IpAddr, i64>>>,
}

/// A connection over `max.connections.per.ip` (or its override) for its address.
#[derive(Debug, thiserror::Error)]
#[error(
    "Rejected connection from {address}, address already has the configured maximum of {max} \
     connections."
)]
pub struct TooManyConnections {
    /// The client's address.
    pub address: IpAddr,
    /// Its limit.
    pub max: i64,
}

impl ConnectionQuotas {
    /// Quotas for `limits`; `listeners` are the listener names in `listeners` order.
    pub fn new(limits: &ConnectionLimits, listeners: &[String]) -> Result<Self, String> {
        let mut per_ip_overrides = HashMap::new();
        for (host, count) in &limits.max_connections_per_ip_overrides {
            let addresses = (host.as_str(), 0).to_socket_addrs().map_err(|e| {
                format!("max.connections.per.ip.overrides: cannot resolve `{host}`: {e}")
            })?;
            for address in addresses {
                per_ip_overrides.insert(address.ip(), i64::from(*count));
            }
        }
        let max_connections_per_ip = i64::from(limits.max_connections_per_ip);
        let per_ip_limited = max_connections_per_ip < i64::from(i32::MAX)
            || per_ip_overrides
                .values()
                .any(|&max| max < i64::from(i32::MAX));
        Ok(ConnectionQuotas {
            max_connections: i64::from(limits.max_connections),
            total: AtomicI64::new(0),
            listeners: listeners
                .iter()
                .map(|name| {
                    let max = limits
                        .listener_max_connections
                        .get(name)
                        .map_or(i64::MAX, |&m| i64::from(m));
                    (AtomicI64::new(0), max)
                })
                .collect(),
            max_connections_per_ip,
            per_ip_overrides,
            per_ip: per_ip_limited.then(|| Mutex::new(HashMap::new())),
        })
    }

    /// Takes a slot for a connection accepted on listener `listener` (index in `listeners`)
    /// from `address`: waits while the broker or the listener is at its limit, then fails if
    /// `address` is at its own.
    pub async fn acquire(
        &'static self,
        listener: usize,
        address: Option<IpAddr>,
    ) -> Result<ConnectionSlot, TooManyConnections> {
        while !self.try_reserve(listener) {
            glommio::timer::sleep(SLOT_POLL).await;
        }
        let mut slot = ConnectionSlot {
            quotas: self,
            listener,
            address: None,
        };
        if let (Some(per_ip), Some(address)) = (&self.per_ip, address) {
            let max = self
                .per_ip_overrides
                .get(&address)
                .copied()
                .unwrap_or(self.max_connections_per_ip);
            let mut counts = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let count = counts.entry(address).or_insert(0);
            if *count >= max {
                if *count == 0 {
                    counts.remove(&address);
                }
                return Err(TooManyConnections { address, max });
            }
            *count += 1;
            slot.address = Some(address);
        }
        Ok(slot)
    }

    /// Live connections over all listeners.
    pub fn total(&self) -> i64 {
        self.total.load(Ordering::Relaxed)
    }

    fn try_reserve(&self, listener: usize) -> bool {
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let (count, max) = &self.listeners[listener];
        if count.fetch_add(1, Ordering::AcqRel) >= *max {
            count.fetch_sub(1, Ordering::AcqRel);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// One live connection's place in the counts; dropping it frees the place.
pub struct ConnectionSlot {
    quotas: &'static ConnectionQuotas,
    listener: usize,
    /// Set when the per-address count holds this connection.
    address: Option<IpAddr>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let quotas = self.quotas;
        let before = quotas.total.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "invariant: connection count below zero");
        let before = quotas.listeners[self.listener]
            .0
            .fetch_sub(1, Ordering::AcqRel);
        assert!(
            before > 0,
            "invariant: listener connection count below zero"
        );
        if let (Some(per_ip), Some(address)) = (&quotas.per_ip, self.address) {
            let mut counts = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let count = counts.get_mut(&address);
            assert!(
                count.as_ref().is_some_and(|c| **c > 0),
                "invariant: no connection counted for {address}"
            );
            if let Some(count) = count {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&address);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: i32, per_ip: i32, overrides: &[(&str, i32)]) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            listener_max_connections: Default::default(),
            max_connections_per_ip: per_ip,
            max_connections_per_ip_overrides: overrides
                .iter()
                .map(|(h, c)| (h.to_string(), *c))
                .collect(),
            connections_max_idle_ms: 600_000,
            max_unsent_bytes: 1 << 20,
        }
    }

    fn leak(quotas: ConnectionQuotas) -> &'static ConnectionQuotas {
        Box::leak(Box::new(quotas))
    }

    /// A fresh executor with little pinned memory (`ulimit -l` may be small).
    fn run<F: std::future::Future<Output = ()> + 'static>(future: F) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .expect("executor")
            .run(future);
    }

    #[test]
    fn per_ip_limits_and_overrides() {
        run(async {
            let quotas = leak(
                ConnectionQuotas::new(&limits(100, 2, &[("127.0.0.2", 0)]), &["P".into()]).unwrap(),
            );
            let one: IpAddr = "127.0.0.1".parse().unwrap();
            let two: IpAddr = "127.0.0.2".parse().unwrap();
            let a = quotas.acquire(0, Some(one)).await.unwrap();
            let _b = quotas.acquire(0, Some(one)).await.unwrap();
            let refused = quotas.acquire(0, Some(one)).await.err().unwrap();
            assert_eq!(refused.max, 2);
            assert!(quotas.acquire(0, Some(two)).await.is_err());
            assert_eq!(quotas.total(), 2);
            drop(a);
            assert_eq!(quotas.total(), 1);
            let _c = quotas.acquire(0, Some(one)).await.unwrap();
        });
    }

    #[test]
    fn broker_limit_blocks_until_a_slot_frees() {
        run(async {
            let quotas =
                leak(ConnectionQuotas::new(&limits(1, i32::MAX, &[]), &["P".into()]).unwrap());
            let first = quotas.acquire(0, None).await.unwrap();
            let waiting = glommio::spawn_local(async move { quotas.acquire(0, None).await });
            glommio::timer::sleep(Duration::from_millis(30)).await;
            assert_eq!(quotas.total(), 1, "the second connection waits");
            drop(first);
            let second = waiting.await.unwrap();
            assert_eq!(quotas.total(), 1);
            drop(second);
            assert_eq!(quotas.total(), 0);
        });
    }
}
