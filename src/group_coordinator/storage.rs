//! One `__consumer_offsets-<p>` partition log as the coordinator uses it: replay everything,
//! append record batches with contiguous offsets, flush.
//!
//! Interim backend until `crate::log::Log` lands on main: a single Kafka-layout segment
//! `<log_dir>/__consumer_offsets-<p>/00000000000000000000.log` written with std::fs. Replay
//! stops at the first torn or corrupt batch and truncates it away, as log recovery does.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::protocol::record_batch::{set_base_offset, BatchIter};

use super::records::{decode_batches, encode_batch, CoordinatorRecord, RecordError};
use super::OFFSETS_TOPIC_NAME;

/// Why a `__consumer_offsets` read or write failed. Cloned to every waiter of a group commit.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system refused an operation.
    #[error("{op} {path}: {message}")]
    Io {
        op: &'static str,
        path: PathBuf,
        message: String,
    },
    /// A stored record does not decode, or one could not be encoded.
    #[error("partition {partition}: {message}")]
    Record { partition: i32, message: String },
    /// This shard does not own the partition.
    #[error("__consumer_offsets-{partition} is not owned by this shard")]
    NotOwned { partition: i32 },
    /// The coordinator is shutting down.
    #[error("group coordinator stopped")]
    Stopped,
}

/// An open `__consumer_offsets` partition.
pub struct PartitionLog {
    partition: i32,
    path: PathBuf,
    file: File,
    log_end_offset: i64,
}

impl PartitionLog {
    /// Opens (creating if needed) the partition's log under `log_dir`.
    pub async fn open(log_dir: &Path, partition: i32) -> Result<PartitionLog, StoreError> {
        let dir = log_dir.join(format!("{OFFSETS_TOPIC_NAME}-{partition}"));
        std::fs::create_dir_all(&dir).map_err(|e| io_error("create_dir_all", &dir, e))?;
        let path = dir.join(format!("{:020}.log", 0));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_error("open", &path, e))?;
        Ok(PartitionLog {
            partition,
            path,
            file,
            log_end_offset: 0,
        })
    }

    /// Reads and decodes every record from the start, truncating a torn tail.
    pub async fn read_all(&mut self) -> Result<Vec<CoordinatorRecord>, StoreError> {
        let mut bytes = Vec::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_end(&mut bytes))
            .map_err(|e| io_error("read", &self.path, e))?;
        let mut iter = BatchIter::with_crc(&bytes);
        let mut last_next_offset = 0;
        for (_, header) in iter.by_ref() {
            last_next_offset = header.next_offset();
        }
        let valid = iter.valid_bytes();
        if valid < bytes.len() {
            tracing::warn!(partition = self.partition, valid, total = bytes.len(), "truncating torn __consumer_offsets tail");
            self.file
                .set_len(valid as u64)
                .map_err(|e| io_error("truncate", &self.path, e))?;
        }
        self.log_end_offset = last_next_offset;
        bytes.truncate(valid);
        decode_batches(Bytes::from(bytes)).map_err(|e| self.record_error(e))
    }

    /// Appends `records` as one batch at the log end offset.
    pub async fn append(&mut self, records: &[CoordinatorRecord], now_ms: i64) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut batch = encode_batch(records, now_ms).map_err(|e| self.record_error(e))?;
        set_base_offset(&mut batch, self.log_end_offset);
        self.file
            .write_all(&batch)
            .map_err(|e| io_error("write", &self.path, e))?;
        self.log_end_offset += records.len() as i64;
        Ok(())
    }

    /// Makes every append so far durable (fdatasync).
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(|e| io_error("fdatasync", &self.path, e))
    }

    /// Flushes; the file closes when dropped.
    pub async fn close(&mut self) -> Result<(), StoreError> {
        self.flush().await
    }

    fn record_error(&self, error: RecordError) -> StoreError {
        StoreError::Record {
            partition: self.partition,
            message: error.to_string(),
        }
    }
}

fn io_error(op: &'static str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Io {
        op,
        path: path.to_owned(),
        message: error.to_string(),
    }
}
