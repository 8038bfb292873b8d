//! Integration tests of the real broker: `cargo test --test it` starts the `ringtail` binary
//! Cargo built for this package on a free loopback port with a temp data dir, and drives it
//! with ringtail-protocol's client codec over a blocking `std::net::TcpStream`
//! ([`harness`]). On failure the broker's log tail is printed.
//!
//! Covered: produce -> fetch for every codec, ListOffsets, restart recovery (clean stop and
//! SIGKILL), a consumer group round (FindCoordinator, JoinGroup, SyncGroup, OffsetCommit,
//! OffsetFetch, restart, OffsetFetch again), transactions on the log side (transactions) and the
//! coordinator over the wire (txn_coordinator: InitProducerId, AddPartitionsToTxn, transactional
//! Produce, EndTxn, markers, fencing, restart, timeout abort). The pytest suite stays for
//! real-client compatibility.

mod groups;
mod harness;
mod list_offsets;
mod produce_fetch;
mod recovery;
mod transactions;
mod txn_coordinator;
