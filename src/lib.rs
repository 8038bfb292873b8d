//! Ringtail: a thread-per-core Kafka-protocol broker on glommio and io_uring.
//!
//! See `ARCHITECTURE.md` for the codemap and the invariants.

pub mod alloc;
pub mod bench;
pub mod config;
pub mod group_coordinator;
pub mod log;
pub mod metadata;
pub mod network;
pub mod partition;
pub mod protocol;
pub mod replica_manager;
pub mod request_handler;
pub mod server;
pub mod shard;
#[doc(hidden)]
pub mod test_support;
