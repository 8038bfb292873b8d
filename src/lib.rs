//! Ringtail: a thread-per-core Kafka-protocol broker on glommio and io_uring.
//!
//! See `ARCHITECTURE.md` for the codemap and the invariants.

pub mod alloc;
pub mod config;
/// Fuzz entry points (issue 14): `fuzz/` targets and `tests/fuzz_replay.rs` call these.
pub mod fuzzing;
pub mod group_coordinator;
pub mod http;
pub mod log;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod network;
pub mod partition;
/// The sans-io wire code (crate `ringtail-protocol`), under its old path `crate::protocol`.
pub use ringtail_protocol as protocol;
pub mod replica_manager;
pub mod request_handler;
pub mod security;
pub mod server;
pub mod shard;
pub mod transaction_coordinator;
/// Record batches as a producer encodes them, for unit tests and benches (crate
/// `ringtail-protocol`'s `testing`).
#[doc(hidden)]
pub use ringtail_protocol::testing as test_support;
