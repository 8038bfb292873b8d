//! Sans-io protocol code: record batch headers and codecs. No I/O, no async, never panics on input.

pub mod record_batch;
