//! Sans-io Kafka wire code of Ringtail: bytes in, values out, and back. No I/O, no async, no
//! runtime; every function here is pure over its arguments and never panics on input.
//!
//! - [`frame`]: request/response framing and headers (size prefix, correlation id), response
//!   encoding that can reference stored record sets instead of copying them.
//! - [`client`]: the client side of the framing, shared by the bench's glommio client and
//!   blocking test clients: encode a request with its header, decode a response frame.
//! - [`produce_legacy`]: Produce v0-2 (removed in Kafka 4.0, KIP-896), answered by hand.
//! - [`record_batch`]: record batch v2 headers: parse, validate, patch, iterate batches.
//! - [`records`]: records inside a batch: build a batch as a producer does, walk its records.
//! - [`codec`]: the codecs of `compression.type` with Kafka's framings (xerial snappy included).
//! - [`varint`]: zigzag varints of the record format.
//! - [`consumer_offsets`]: key/value schemas of the `__consumer_offsets` records.
//! - [`consumer_group_records`]: the KIP-848 consumer group records among them (flexible
//!   values, record types 3-8 and 16).
//! - [`transaction_state`]: key/value schemas of the `__transaction_state` records.
//! - [`control_record`]: transaction markers (control record key, end-transaction marker,
//!   the control batch a coordinator writes).
//!
//! Errors are per module `thiserror` enums ([`frame::FrameError`], [`client::ClientCodecError`],
//! [`record_batch::BatchError`], [`records::WalkError`], [`codec::CodecError`],
//! [`consumer_offsets::RecordError`]).

#![deny(missing_docs)]

pub mod client;
pub mod codec;
pub mod consumer_group_records;
pub mod consumer_offsets;
pub mod consumer_offsets_txn;
pub mod control_record;
pub mod frame;
pub mod produce_legacy;
pub mod record_batch;
pub mod record_error;
pub mod records;
pub mod stored_records;
#[doc(hidden)]
pub mod testing;
pub mod transaction_state;
pub mod varint;
