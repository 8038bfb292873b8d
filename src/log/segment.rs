//! One segment of a partition log: `<base_offset:020>.log` plus its two indexes (Kafka's
//! `LogSegment`).
//!
//! The `.log` holds record batches byte for byte and is written through a glommio [`DmaFile`]
//! (O_DIRECT, io_uring). O_DIRECT needs aligned positions and sizes, so the segment keeps the
//! partial last page (`tail`) in memory and every append writes the aligned region from
//! `align_down(size_bytes)` holding old tail + new bytes, zero-padded to the alignment. At run
//! time the file may therefore carry zero padding past the logical size; a roll or a clean close
//! truncates it away and recovery treats it as a torn tail.
//!
//! Invariants: batches are contiguous: each base offset equals the previous batch's last offset
//! plus one, starting at `base_offset`; `size_bytes` and `next_offset` cover only completed
//! writes; no `RefCell` borrow is held across an await.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions, ReadResult};
use kafka_protocol::records::RecordBatchDecoder;

use super::offset_index::OffsetIndex;
use super::preallocate::{self, Preallocation};
use super::time_index::TimeIndex;
use super::{LogConfig, LogError};
use crate::protocol::record_batch::{RecordBatchHeader, RECORD_BATCH_HEADER_BYTES};

/// File name extension of the record data (Kafka: `LogFileUtils.LOG_FILE_SUFFIX`).
pub const LOG_FILE_SUFFIX: &str = "log";
/// File name extension of the offset index (Kafka: `LogFileUtils.INDEX_FILE_SUFFIX`).
pub const INDEX_FILE_SUFFIX: &str = "index";
/// File name extension of the time index (Kafka: `LogFileUtils.TIME_INDEX_FILE_SUFFIX`).
pub const TIME_INDEX_FILE_SUFFIX: &str = "timeindex";

/// Most records decoded from one batch (timestamp lookups); the decoder allocates for all of them
/// before reading any, so a forged `record_count` must not reach it.
pub const MAX_RECORDS_DECODED_PER_BATCH: usize = 1 << 22;
/// Smallest encoded v2 record in bytes: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one varint byte each (Kafka's `DefaultRecord`).
pub const RECORD_MIN_BYTES: usize = 7;

/// Bytes read per I/O while walking batch headers (scans, recovery, time lookups).
pub(crate) const SCAN_CHUNK_BYTES: usize = 128 * 1024;
const _: () = assert!(SCAN_CHUNK_BYTES >= RECORD_BATCH_HEADER_BYTES);
const _: () = assert!(MAX_RECORDS_DECODED_PER_BATCH <= i32::MAX as usize);
const _: () = assert!(RECORD_MIN_BYTES > 0);

/// `<dir>/<base_offset zero-padded to 20 digits>.<suffix>` (Kafka: `LogFileUtils.filenamePrefixFromOffset`).
pub fn segment_file_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Milliseconds since the Unix epoch, from the wall clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Mutable bookkeeping of a segment; changed only after the I/O it describes completed.
pub(crate) struct SegmentState {
    /// Logical size of the `.log` in bytes (completed appends only).
    pub size_bytes: u64,
    /// Bytes `[align_down(size_bytes), size_bytes)` of the file, kept for the next aligned write.
    pub tail: Vec<u8>,
    /// Offset after the last batch; `base_offset` when empty.
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Bytes appended since the last offset-index entry (Kafka: `bytesSinceLastIndexEntry`).
    pub bytes_since_last_index_entry: u64,
    /// Largest batch `max_timestamp` in the segment, ms; -1 when there is none.
    pub max_timestamp: i64,
    /// Last offset of the first batch that carried `max_timestamp`; -1 when none.
    pub offset_of_max_timestamp: i64,
    /// `max_timestamp` of the first batch: the start of `segment.ms` (Kafka: `rollingBasedTimestamp`).
    pub first_batch_timestamp: Option<i64>,
    /// Wall-clock creation time, ms: the start of `segment.ms` when batches carry no timestamp.
    pub created_ms: i64,
    /// True when the in-memory indexes differ from the index files.
    pub indexes_dirty: bool,
}

impl SegmentState {
    /// Bookkeeping of a segment with no batches yet: a new segment, or the start of a full scan.
    pub(crate) fn empty(base_offset: i64, config: &LogConfig) -> SegmentState {
        SegmentState {
            size_bytes: 0,
            tail: Vec::new(),
            next_offset: base_offset,
            offset_index: OffsetIndex::new(base_offset, config.segment_index_bytes),
            time_index: TimeIndex::new(base_offset, config.segment_index_bytes),
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_batch_timestamp: None,
            created_ms: now_ms(),
            indexes_dirty: true,
        }
    }
}

/// One segment: its open `.log` file and in-memory indexes.
pub(crate) struct LogSegment {
    base_offset: i64,
    log_path: PathBuf,
    file: Rc<DmaFile>,
    state: RefCell<SegmentState>,
    /// Completed appends, counted to tell `flush` what a sync must cover.
    appends_completed: Cell<u64>,
    /// Value of `appends_completed` that the last finished fdatasync covered.
    appends_synced: Cell<u64>,
    /// Zeros written ahead of the appends (`log.preallocate`, [`super::preallocate`]).
    preallocation: Rc<Preallocation>,
}

impl LogSegment {
    /// Creates an empty segment at `base_offset` (any stale files of that name are replaced).
    pub async fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<LogSegment, LogError> {
        let log_path = segment_file_path(dir, base_offset, LOG_FILE_SUFFIX);
        let file = open_dma(&log_path, true).await?;
        let state = SegmentState::empty(base_offset, config);
        Ok(LogSegment::from_parts(base_offset, log_path, file, state))
    }

    /// Wraps an opened file and its recovered state; the tail page must already be loaded.
    pub fn from_parts(
        base_offset: i64,
        log_path: PathBuf,
        file: DmaFile,
        state: SegmentState,
    ) -> LogSegment {
        assert!(
            state.next_offset >= base_offset,
            "invariant: a segment's next offset is not below its base offset"
        );
        assert_eq!(
            state.offset_index.base_offset(),
            base_offset,
            "invariant: the offset index is relative to the segment's base offset"
        );
        // Only the active segment needs its partial last page (sealed ones are never appended).
        let partial = state.size_bytes - align_down(state.size_bytes, file.alignment());
        assert!(
            state.tail.is_empty() || state.tail.len() as u64 == partial,
            "invariant: the tail is the partial last page"
        );
        let preallocation = Preallocation::new(state.size_bytes, file.alignment());
        LogSegment {
            base_offset,
            log_path,
            file: Rc::new(file),
            state: RefCell::new(state),
            appends_completed: Cell::new(0),
            appends_synced: Cell::new(0),
            preallocation,
        }
    }

    /// First offset this segment may hold (the number in its file names).
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Path of the `.log` file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Logical size of the `.log` in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().size_bytes
    }

    /// Offset after the last batch of this segment.
    pub fn next_offset(&self) -> i64 {
        self.state.borrow().next_offset
    }

    /// Largest batch timestamp in ms and the last offset of its batch, if any batch has one.
    pub fn max_timestamp_and_offset(&self) -> Option<(i64, i64)> {
        let state = self.state.borrow();
        (state.offset_of_max_timestamp >= 0)
            .then_some((state.max_timestamp, state.offset_of_max_timestamp))
    }

    /// Immutable view of the bookkeeping (for roll decisions and tests).
    pub fn state(&self) -> std::cell::Ref<'_, SegmentState> {
        self.state.borrow()
    }

    /// True when appending `headers` (`chunk_bytes` long) must go to a new segment (Kafka's
    /// `LogSegment.shouldRoll`): the segment is non-empty and would exceed `segment.bytes`, or
    /// waited longer than `segment.ms`, or an index is full, or a relative offset would overflow.
    pub fn should_roll(
        &self,
        config: &LogConfig,
        chunk_bytes: u64,
        headers: &[RecordBatchHeader],
        now_ms: i64,
    ) -> bool {
        let state = self.state.borrow();
        if state.size_bytes == 0 {
            return false;
        }
        let last_offset = headers
            .last()
            .map_or(state.next_offset, |h| h.last_offset());
        let max_timestamp = headers.iter().map(|h| h.max_timestamp).max().unwrap_or(-1);
        let waited_ms = match state.first_batch_timestamp {
            Some(first) if first >= 0 && max_timestamp >= 0 => max_timestamp.saturating_sub(first),
            _ => now_ms.saturating_sub(state.created_ms),
        };
        state.size_bytes + chunk_bytes > config.segment_bytes
            || waited_ms > config.segment_ms.min(i64::MAX as u64) as i64
            || state.offset_index.is_full()
            || state.time_index.is_full()
            || last_offset - self.base_offset > i32::MAX as i64
    }

    /// Writes `chunk` (whole batches, described by `headers`, starting at `next_offset`) after
    /// the current end; returns once the DMA write completed (not synced). Indexes gain an entry
    /// per `index_interval_bytes` as in Kafka's `LogSegment.append`.
    pub async fn append(
        &self,
        chunk: &[u8],
        headers: &[RecordBatchHeader],
        index_interval_bytes: u32,
    ) -> Result<(), LogError> {
        let alignment = self.file.alignment();
        let (size_before, buffer, new_tail) = {
            let state = self.state.borrow();
            assert_eq!(
                headers.first().map(|h| h.base_offset),
                Some(state.next_offset),
                "invariant: an append starts at the segment's next offset"
            );
            let start = align_down(state.size_bytes, alignment);
            assert_eq!(
                state.tail.len() as u64,
                state.size_bytes - start,
                "invariant: the tail is the partial last page"
            );
            let end = state.size_bytes + chunk.len() as u64;
            assert!(
                end <= i32::MAX as u64,
                "invariant: segment positions fit in i32"
            );
            let length = (align_up(end, alignment) - start) as usize;
            let mut buffer = self.file.alloc_dma_buffer(length);
            let bytes = buffer.as_bytes_mut();
            let tail_len = state.tail.len();
            bytes[..tail_len].copy_from_slice(&state.tail);
            bytes[tail_len..tail_len + chunk.len()].copy_from_slice(chunk);
            bytes[tail_len + chunk.len()..].fill(0);
            let new_tail = bytes
                [(align_down(end, alignment) - start) as usize..(end - start) as usize]
                .to_vec();
            (state.size_bytes, (start, buffer), new_tail)
        };
        let (start, buffer) = buffer;
        let length = buffer.len();
        self.preallocation.before_write(start + length as u64).await;
        let written = self
            .file
            .write_at(buffer, start)
            .await
            .map_err(|e| LogError::io("write", &self.log_path, e))?;
        if written != length {
            return Err(LogError::ShortWrite {
                path: self.log_path.clone(),
                position: start,
                expected: length,
                written,
            });
        }
        self.preallocation.after_write(start + length as u64);
        let mut state = self.state.borrow_mut();
        assert_eq!(
            state.size_bytes, size_before,
            "invariant: appends to a segment never run concurrently"
        );
        let mut position = size_before;
        for header in headers {
            record_batch(&mut state, header, position, index_interval_bytes);
            position += header.size_bytes() as u64;
        }
        assert_eq!(
            position,
            size_before + chunk.len() as u64,
            "invariant: the headers cover the chunk"
        );
        assert!(
            (new_tail.len() as u64) < alignment,
            "invariant: the tail is shorter than one page"
        );
        state.size_bytes = position;
        state.tail = new_tail;
        state.indexes_dirty = true;
        drop(state);
        self.appends_completed.set(self.appends_completed.get() + 1);
        Ok(())
    }

    /// Starts writing zeros ahead of the appends when due (`log.preallocate`; see
    /// [`super::preallocate`]); never past `segment_bytes` rounded up to the alignment.
    pub fn maybe_preallocate(&self, segment_bytes: u64) {
        preallocate::maybe_fill(
            &self.preallocation,
            &self.file,
            &self.log_path,
            segment_bytes,
        );
    }

    /// Preallocation fills completed (tests).
    #[cfg(test)]
    pub fn preallocation_fills(&self) -> u64 {
        self.preallocation.fills()
    }

    /// File bytes below this are written blocks: data, or zeros of a completed fill (tests).
    #[cfg(test)]
    pub fn preallocated_end(&self) -> u64 {
        self.preallocation.zeroed_end()
    }

    /// fdatasync of the `.log` when an append completed since the last sync finished. Covers
    /// every append completed before the call. True when an fdatasync was issued.
    pub async fn flush(&self) -> Result<bool, LogError> {
        let target = self.appends_completed.get();
        if self.appends_synced.get() >= target {
            return Ok(false);
        }
        self.file
            .fdatasync()
            .await
            .map_err(|e| LogError::io("fdatasync", &self.log_path, e))?;
        self.appends_synced
            .set(self.appends_synced.get().max(target));
        assert!(
            self.appends_synced.get() <= self.appends_completed.get(),
            "invariant: a sync covers only completed appends"
        );
        Ok(true)
    }

    /// Makes the segment immutable and durable (Kafka's `onBecomeInactiveSegment` + `flush`):
    /// adds the final time-index entry, truncates the zero padding, syncs the `.log`, then writes
    /// both index files.
    pub async fn seal(&self) -> Result<(), LogError> {
        {
            let mut state = self.state.borrow_mut();
            let (max_timestamp, offset) = (state.max_timestamp, state.offset_of_max_timestamp);
            if offset >= 0 {
                state.time_index.maybe_append(max_timestamp, offset, true);
            }
        }
        // No fill may extend the file after the truncate.
        self.preallocation.stop().await;
        let size = self.size_bytes();
        self.file
            .truncate(size)
            .await
            .map_err(|e| LogError::io("truncate", &self.log_path, e))?;
        self.file
            .fdatasync()
            .await
            .map_err(|e| LogError::io("fdatasync", &self.log_path, e))?;
        self.appends_synced.set(self.appends_completed.get());
        self.write_indexes().await
    }

    /// Writes the active segment's `.index` and `.timeindex` with only the entries below
    /// `durable_offset` (every batch below it fdatasynced), so that recovery after a crash can
    /// trust them and CRC-scan only from the last entry on (a recovery point, as Kafka's
    /// `recovery-point-offset-checkpoint`, but inside the segment). Returns false, writing
    /// nothing, when no offset-index entry is below `durable_offset`.
    pub async fn write_index_checkpoint(&self, durable_offset: i64) -> Result<bool, LogError> {
        let (offset_bytes, time_bytes) = {
            let state = self.state.borrow();
            (
                state.offset_index.to_bytes_below(durable_offset),
                state.time_index.to_bytes_below(durable_offset),
            )
        };
        if offset_bytes.is_empty() {
            return Ok(false);
        }
        self.write_index_files(&offset_bytes, &time_bytes).await?;
        Ok(true)
    }

    /// Replaces `.index` and `.timeindex` with these bytes (each fdatasynced).
    async fn write_index_files(
        &self,
        offset_bytes: &[u8],
        time_bytes: &[u8],
    ) -> Result<(), LogError> {
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        write_file(
            &segment_file_path(dir, self.base_offset, INDEX_FILE_SUFFIX),
            offset_bytes,
        )
        .await?;
        write_file(
            &segment_file_path(dir, self.base_offset, TIME_INDEX_FILE_SUFFIX),
            time_bytes,
        )
        .await
    }

    /// Writes `.index` and `.timeindex` when they changed since the last write.
    pub async fn write_indexes(&self) -> Result<(), LogError> {
        let (dirty, offset_bytes, time_bytes) = {
            let state = self.state.borrow();
            (
                state.indexes_dirty,
                state.offset_index.to_bytes(),
                state.time_index.to_bytes(),
            )
        };
        if !dirty {
            return Ok(());
        }
        self.write_index_files(&offset_bytes, &time_bytes).await?;
        self.state.borrow_mut().indexes_dirty = false;
        Ok(())
    }

    /// Whole batches starting with the one containing `offset`, at most `max_bytes` except that
    /// the first is returned whole (KIP-74), none with base offset `>= max_offset`, with the
    /// file position of the first. `None` when the segment holds no batch ending at or after
    /// `offset`.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        skip_slack_bytes: usize,
    ) -> Result<Option<(u64, Bytes)>, LogError> {
        let (size, mut position) = {
            let state = self.state.borrow();
            if offset >= state.next_offset {
                return Ok(None);
            }
            (
                state.size_bytes,
                state.offset_index.lookup(offset).position as u64,
            )
        };
        loop {
            if position >= size {
                return Ok(None);
            }
            let want = (size - position).min(
                max_bytes
                    .max(RECORD_BATCH_HEADER_BYTES)
                    .saturating_add(skip_slack_bytes) as u64,
            ) as usize;
            let data = self.read_at(position, want).await?;
            let mut local = 0usize;
            while data.len() - local.min(data.len()) >= RECORD_BATCH_HEADER_BYTES {
                let header = self.parse_header(&data[local..], position + local as u64)?;
                if header.last_offset() < offset {
                    local += header.size_bytes();
                    continue;
                }
                let first_position = position + local as u64;
                if header.next_offset() > max_offset {
                    return Ok(Some((first_position, Bytes::new())));
                }
                let wanted =
                    (size - first_position).min(max_bytes.max(header.size_bytes()) as u64) as usize;
                let batches = if data.len() - local >= wanted {
                    trim_to_batches(&data[local..local + wanted], max_bytes, max_offset)
                } else {
                    let again = self.read_at(first_position, wanted).await?;
                    // The bytes are read again: they must still start with the batch found.
                    if RecordBatchHeader::parse(&again).ok() != Some(header) {
                        return Err(self.corrupt(first_position, "batch changed between reads"));
                    }
                    trim_to_batches(&again, max_bytes, max_offset)
                };
                return Ok(Some((first_position, batches)));
            }
            if local == 0 && data.len() < RECORD_BATCH_HEADER_BYTES {
                return Err(self.corrupt(position, "short read inside the logical size"));
            }
            position += local as u64;
        }
    }

    /// File position of the indexed batch at or below `offset` (0 when none is indexed), where a
    /// walk of the headers toward `offset` starts.
    pub fn index_position(&self, offset: i64) -> u64 {
        self.state.borrow().offset_index.lookup(offset).position as u64
    }

    /// Walks batch headers from `position` up to the logical end, returning the first batch
    /// (position, header) for which `found` is true. Reads in chunks; bodies are skipped.
    pub async fn find_batch(
        &self,
        mut position: u64,
        mut found: impl FnMut(&RecordBatchHeader) -> bool,
    ) -> Result<Option<(u64, RecordBatchHeader)>, LogError> {
        let size = self.size_bytes();
        while position < size {
            let want = (size - position).min(SCAN_CHUNK_BYTES as u64) as usize;
            let data = self.read_at(position, want).await?;
            if data.len() < RECORD_BATCH_HEADER_BYTES {
                return Err(self.corrupt(position, "short read inside the logical size"));
            }
            let mut local = 0usize;
            while local + RECORD_BATCH_HEADER_BYTES <= data.len() {
                let header = self.parse_header(&data[local..], position + local as u64)?;
                if found(&header) {
                    return Ok(Some((position + local as u64, header)));
                }
                local += header.size_bytes();
            }
            position += local as u64;
        }
        Ok(None)
    }

    /// Reads exactly the batch described by `header` at `position`.
    pub async fn read_batch(
        &self,
        position: u64,
        header: &RecordBatchHeader,
    ) -> Result<ReadResult, LogError> {
        let data = self.read_at(position, header.size_bytes()).await?;
        if data.len() != header.size_bytes() {
            return Err(self.corrupt(position, "batch extends past the end of the file"));
        }
        Ok(data)
    }

    /// (offset, timestamp) of the first record with timestamp `>= target` in the batch at
    /// `position`, decoding its records (Kafka: `LogSegment.findOffsetByTimestamp`). A
    /// LogAppendTime batch stamps every record with its `max_timestamp`.
    pub async fn find_record_by_timestamp(
        &self,
        position: u64,
        header: &RecordBatchHeader,
        target: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        if header.is_log_append_time() {
            return Ok((header.max_timestamp >= target)
                .then_some((header.base_offset, header.max_timestamp)));
        }
        if let Some(reason) = undecodable(header) {
            return Err(LogError::RecordDecode {
                path: self.log_path.clone(),
                base_offset: header.base_offset,
                reason,
            });
        }
        let data = self.read_batch(position, header).await?;
        let mut bytes = Bytes::copy_from_slice(&data);
        let record_set =
            RecordBatchDecoder::decode(&mut bytes).map_err(|e| LogError::RecordDecode {
                path: self.log_path.clone(),
                base_offset: header.base_offset,
                reason: format!("{e:#}"),
            })?;
        Ok(record_set
            .records
            .iter()
            .find(|r| r.timestamp >= target)
            .map(|r| (r.offset, r.timestamp)))
    }

    /// Unaligned DMA read of up to `length` bytes at `position`.
    pub async fn read_at(&self, position: u64, length: usize) -> Result<ReadResult, LogError> {
        self.file
            .read_at(position, length)
            .await
            .map_err(|e| LogError::io("read", &self.log_path, e))
    }

    /// Deletes the three files of this segment (Kafka's `LogSegment.deleteIfExists`).
    pub async fn delete_files(&self) -> Result<(), LogError> {
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        for suffix in [
            LOG_FILE_SUFFIX,
            INDEX_FILE_SUFFIX,
            TIME_INDEX_FILE_SUFFIX,
            super::TXN_INDEX_FILE_SUFFIX,
        ] {
            let path = segment_file_path(dir, self.base_offset, suffix);
            match glommio::io::remove(&path).await {
                Ok(()) => {}
                Err(e) => {
                    let e = std::io::Error::from(e);
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(LogError::io("remove", &path, e));
                    }
                }
            }
        }
        Ok(())
    }

    fn parse_header(&self, bytes: &[u8], position: u64) -> Result<RecordBatchHeader, LogError> {
        RecordBatchHeader::parse(bytes).map_err(|source| LogError::CorruptBatch {
            path: self.log_path.clone(),
            position,
            source,
        })
    }

    fn corrupt(&self, position: u64, reason: &str) -> LogError {
        LogError::CorruptSegment {
            path: self.log_path.clone(),
            position,
            reason: reason.to_string(),
        }
    }
}

/// Updates the bookkeeping for one appended batch at `position` (Kafka's `LogSegment.append`
/// loop): max timestamp first, then an index entry when more than `index_interval_bytes` were
/// appended since the last one, then the byte count.
pub(crate) fn record_batch(
    state: &mut SegmentState,
    header: &RecordBatchHeader,
    position: u64,
    index_interval_bytes: u32,
) {
    assert_eq!(
        header.base_offset, state.next_offset,
        "invariant: offsets are contiguous (a batch starts at the segment's next offset)"
    );
    assert!(
        header.last_offset_delta >= 0,
        "invariant: a batch's last offset is not below its base offset"
    );
    assert!(
        position + header.size_bytes() as u64 <= i32::MAX as u64,
        "invariant: segment positions fit in i32"
    );
    if state.first_batch_timestamp.is_none() {
        state.first_batch_timestamp = Some(header.max_timestamp);
    }
    if header.max_timestamp > state.max_timestamp {
        state.max_timestamp = header.max_timestamp;
        state.offset_of_max_timestamp = header.last_offset();
    }
    if state.bytes_since_last_index_entry > index_interval_bytes as u64 {
        if !state.offset_index.is_full() {
            state
                .offset_index
                .append(header.last_offset(), position as u32);
        }
        let (max_timestamp, offset) = (state.max_timestamp, state.offset_of_max_timestamp);
        if offset >= 0 {
            state.time_index.maybe_append(max_timestamp, offset, false);
        }
        state.bytes_since_last_index_entry = 0;
    }
    state.bytes_since_last_index_entry += header.size_bytes() as u64;
    state.next_offset = header.next_offset();
}

/// [`record_batch`] for a batch of a cleaned segment, where offsets may have gaps (log
/// compaction removes records, never renumbers them): the batch starts at or after the
/// segment's next offset.
pub(crate) fn record_batch_after_gap(
    state: &mut SegmentState,
    header: &RecordBatchHeader,
    position: u64,
    index_interval_bytes: u32,
) {
    assert!(
        header.base_offset >= state.next_offset,
        "invariant: offsets strictly increase (a cleaned batch starts at or after the next offset)"
    );
    state.next_offset = header.base_offset;
    record_batch(state, header, position, index_interval_bytes);
}

/// Why the records of a batch must not be handed to the decoder, which reserves memory for
/// `record_count` records up front: more records than [`MAX_RECORDS_DECODED_PER_BATCH`], or,
/// uncompressed, more than the body can hold at [`RECORD_MIN_BYTES`] each.
fn undecodable(header: &RecordBatchHeader) -> Option<String> {
    let count = header.record_count.max(0) as usize;
    let body = header
        .size_bytes()
        .saturating_sub(RECORD_BATCH_HEADER_BYTES);
    if count > MAX_RECORDS_DECODED_PER_BATCH {
        return Some(format!(
            "record_count {count} exceeds {MAX_RECORDS_DECODED_PER_BATCH}"
        ));
    }
    let uncompressed = header.attributes & 0x07 == 0;
    if uncompressed && count.saturating_mul(RECORD_MIN_BYTES) > body {
        return Some(format!("record_count {count} cannot fit in {body} bytes"));
    }
    None
}

/// Keeps the whole batches of `bytes` (which starts at a batch) that fit in `max_bytes`, the
/// first always, stopping before any batch that ends past `max_offset` (batches are written
/// whole, so with a sound log that is the first with base offset `>= max_offset`).
fn trim_to_batches(bytes: &[u8], max_bytes: usize, max_offset: i64) -> Bytes {
    let mut end = 0usize;
    for (position, header) in crate::protocol::record_batch::BatchIter::new(bytes) {
        if header.next_offset() > max_offset
            || (position > 0 && position + header.size_bytes() > max_bytes)
        {
            break;
        }
        end = position + header.size_bytes();
    }
    Bytes::copy_from_slice(&bytes[..end])
}

/// Opens (and with `create`, creates and truncates) a file for DMA reads and writes.
pub(crate) async fn open_dma(path: &Path, create: bool) -> Result<DmaFile, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .dma_open(path)
        .await
        .map_err(|e| LogError::io("open", path, e))
}

/// Replaces the content of `path` with `bytes` through DMA: an aligned, zero-padded write,
/// a truncate to the exact length and an fdatasync.
pub(crate) async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let file = open_dma(path, true).await?;
    if !bytes.is_empty() {
        let length = align_up(bytes.len() as u64, file.alignment()) as usize;
        let mut buffer = file.alloc_dma_buffer(length);
        buffer.as_bytes_mut()[..bytes.len()].copy_from_slice(bytes);
        buffer.as_bytes_mut()[bytes.len()..].fill(0);
        let written = file
            .write_at(buffer, 0)
            .await
            .map_err(|e| LogError::io("write", path, e))?;
        if written != length {
            return Err(LogError::ShortWrite {
                path: path.to_path_buf(),
                position: 0,
                expected: length,
                written,
            });
        }
        file.truncate(bytes.len() as u64)
            .await
            .map_err(|e| LogError::io("truncate", path, e))?;
    }
    file.fdatasync()
        .await
        .map_err(|e| LogError::io("fdatasync", path, e))?;
    file.close()
        .await
        .map_err(|e| LogError::io("close", path, e))
}

/// Reads a whole small file through DMA; `None` when it does not exist.
pub(crate) async fn read_file(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    let file = match OpenOptions::new().read(true).dma_open(path).await {
        Ok(file) => file,
        Err(e) => {
            let e = std::io::Error::from(e);
            if e.kind() == std::io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(LogError::io("open", path, e));
        }
    };
    let size = file
        .file_size()
        .await
        .map_err(|e| LogError::io("stat", path, e))?;
    let data = if size == 0 {
        Vec::new()
    } else {
        file.read_at(0, size as usize)
            .await
            .map_err(|e| LogError::io("read", path, e))?
            .to_vec()
    };
    file.close()
        .await
        .map_err(|e| LogError::io("close", path, e))?;
    Ok(Some(data))
}

/// Largest multiple of `alignment` (a power of two) not above `value`.
pub(crate) fn align_down(value: u64, alignment: u64) -> u64 {
    value & !(alignment - 1)
}

/// Smallest multiple of `alignment` (a power of two) not below `value`.
pub(crate) fn align_up(value: u64, alignment: u64) -> u64 {
    align_down(value + alignment - 1, alignment)
}

thread_local! {
    /// Devices (`st_dev`) on which this thread already primed glommio's iopoll probe.
    static PROBED_DEVICES: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Makes glommio's per-thread, per-device iopoll probe see real data.
///
/// glommio decides whether a block device supports polled I/O (`IORING_SETUP_IOPOLL`) by reading
/// the first block of the first file opened with `dma_open` on that device, and caches the
/// answer per thread. When that first file is empty (a new segment), the read ends at EOF
/// without reaching the device, the probe wrongly answers "supported", and every later read of
/// real data fails with EOPNOTSUPP (seen on virtio disks). Opening a non-empty file first gives
/// the right answer. Runs once per thread and device; the probe file is removed at once.
pub(crate) async fn prime_iopoll_probe(dir: &Path) -> Result<(), LogError> {
    use std::os::unix::fs::MetadataExt;
    let device = std::fs::metadata(dir)
        .map_err(|e| LogError::io("stat", dir, e))?
        .dev();
    if PROBED_DEVICES.with(|d| d.borrow().contains(&device)) {
        return Ok(());
    }
    let path = dir.join(".dma-probe.tmp");
    std::fs::write(&path, [0u8; 4096]).map_err(|e| LogError::io("write", &path, e))?;
    let opened = OpenOptions::new().read(true).dma_open(&path).await;
    let removed = std::fs::remove_file(&path);
    let file = opened.map_err(|e| LogError::io("open", &path, e))?;
    file.close()
        .await
        .map_err(|e| LogError::io("close", &path, e))?;
    removed.map_err(|e| LogError::io("remove", &path, e))?;
    PROBED_DEVICES.with(|d| d.borrow_mut().push(device));
    Ok(())
}
