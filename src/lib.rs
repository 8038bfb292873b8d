//! Ringtail: a thread-per-core Kafka-protocol broker on glommio and io_uring.
//!
//! See `ARCHITECTURE.md` for the codemap and the invariants.

pub mod bench;
pub mod protocol;
