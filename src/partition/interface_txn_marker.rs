//! The `TxnMarker` of the transactions interface (brief s18 tx-interface.md), defined here
//! only so the group coordinator's `write_txn_marker` compiles on its own branch. TXLOG owns
//! the type in `src/partition/transactions.rs`: at the merge, delete this file and its two
//! lines in `partition.rs` and keep TXLOG's definition (same name and fields).

/// A commit or abort marker for one producer's transaction on one partition (KIP-98
/// WriteTxnMarkers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
}
