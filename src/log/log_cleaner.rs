//! One cleaning pass over a partition log (Kafka's `Cleaner.clean` / `cleanSegments` and
//! `UnifiedLog.replaceSegments`), using the sans-io rules of [`super::cleaner`].
//!
//! A pass: (1) find the dirty section `[first_dirty_offset, first_uncleanable_offset)` (the
//! active segment and segments holding records younger than `min.compaction.lag.ms` are
//! uncleanable) and stop unless [`is_cleanable`]; (2) build the key map over the dirty section,
//! batch by batch, until `log.cleaner.dedupe.buffer.size` is used; (3) clean every non-active
//! segment below the map's end, in groups of at most `segment.bytes`, each group into one
//! `<base>.log.cleaned` plus `.index.cleaned` / `.timeindex.cleaned`, fdatasynced; (4) swap:
//! rename the three files to `.swap` (indexes first, the `.log` last: a `.log.swap` is the commit
//! point), replace the group in the segment list, fsync the directory, remove the old segments'
//! files and rename the `.swap` files to their final names, fsync the directory again.
//! `recovery` finishes a swap that a crash interrupted after the commit point and removes
//! `.cleaned` files from before it.
//!
//! Invariants: the active segment is never cleaned; cleaning only ever removes offsets, never
//! reorders or renumbers them (each output batch keeps its base offset and last offset, and
//! output batches are written in input order); the swap replaces the group only if the segment
//! list still holds exactly that group (retention or close in between abort the group), and the
//! renames, the list change and the file removals run without an await between them. Work is
//! bounded per step: one read chunk ([`SCAN_CHUNK_BYTES`], or one batch) is processed between
//! yields to the executor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures_lite::AsyncWriteExt;
use glommio::io::{DmaStreamWriterBuilder, ReadResult};

use super::cleaner::{
    filter_batch, group_segments_by_size, is_cleanable, records_section, split_records,
    BatchOutcome, CleanError, CleanerConfig, DirtyStats, FilterContext, OffsetMap,
};
use super::segment::{
    open_dma, record_batch_after_gap, segment_file_path, write_file, LogSegment, SegmentState,
    INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, SCAN_CHUNK_BYTES, TIME_INDEX_FILE_SUFFIX,
};
use super::{Log, LogError};
use crate::protocol::record_batch::{BatchError, BatchIter, RecordBatchHeader};

/// Suffix of a segment file being written by the cleaner (Kafka's `CLEANED_FILE_SUFFIX`).
pub const CLEANED_FILE_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment file committed to replace its group (Kafka's `SWAP_FILE_SUFFIX`).
pub const SWAP_FILE_SUFFIX: &str = ".swap";
/// Bytes the `.cleaned` writer buffers before a DMA write.
const CLEANED_WRITE_BUFFER_BYTES: usize = 128 * 1024;

/// What one cleaning pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanSummary {
    /// The new first dirty offset, to checkpoint (`cleaner-offset-checkpoint`).
    pub first_dirty_offset: i64,
    /// Segments replaced (before grouping).
    pub segments_cleaned: usize,
    /// Bytes of the replaced segments, and of what replaced them.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Batches that lost records (rebuilt or dropped).
    pub batches_rewritten: u64,
    /// Keys in the map of this pass.
    pub keys_mapped: usize,
    /// End of the cleaned range: batches below it may have changed (the partition drops them
    /// from its tail cache).
    pub cleaned_end_offset: i64,
}

impl Log {
    /// Runs one cleaning pass (see the module doc) when the log is cleanable. `first_dirty_offset`
    /// is the checkpointed start of the dirty section (`None`, below the log start or past the
    /// active segment: the log start, as Kafka's `LogCleanerManager.cleanableOffsets`).
    /// `Ok(None)` when there was nothing to clean or the log changed under the pass.
    pub async fn clean(
        &self,
        config: &CleanerConfig,
        first_dirty_offset: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<CleanSummary>, LogError> {
        self.check_open()?;
        let segments: Vec<Rc<LogSegment>> = self.segments.borrow().clone();
        let Some((active, sealed)) = segments.split_last() else {
            return Ok(None);
        };
        if sealed.is_empty() {
            return Ok(None);
        }
        let log_start = self.log_start_offset();
        let first_dirty = match first_dirty_offset {
            Some(o) if o >= log_start && o <= active.base_offset() => o,
            _ => log_start,
        };
        let uncleanable = first_uncleanable_offset(sealed, active, first_dirty, config, now_ms);
        let stats = dirty_stats(sealed, first_dirty, uncleanable).await?;
        if uncleanable <= first_dirty || !is_cleanable(&stats, config, now_ms) {
            return Ok(None);
        }
        let dirty: Vec<Rc<LogSegment>> = sealed
            .iter()
            .filter(|s| s.next_offset() > first_dirty && s.base_offset() < uncleanable)
            .cloned()
            .collect();
        let (map, map_end) = build_offset_map(&dirty, first_dirty, uncleanable, config).await?;
        let last_batches = last_batch_of_producers(&segments).await?;
        let to_clean: Vec<Rc<LogSegment>> = sealed
            .iter()
            .filter(|s| s.base_offset() < map_end)
            .cloned()
            .collect();
        let shape: Vec<(i64, i64, u64)> = to_clean
            .iter()
            .map(|s| (s.base_offset(), s.next_offset(), s.size_bytes()))
            .collect();
        let mut summary = CleanSummary {
            first_dirty_offset: map_end,
            keys_mapped: map.len(),
            ..CleanSummary::default()
        };
        let context = FilterContext {
            map: &map,
            map_end_offset: map_end,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            last_batch_of_producer: false,
        };
        let mut at = 0;
        for length in group_segments_by_size(&shape, self.config().segment_bytes) {
            let group = &to_clean[at..at + length];
            at += length;
            let Some((bytes_after, rewritten)) =
                self.clean_group(group, &context, &last_batches).await?
            else {
                // The log changed under the pass: keep what was swapped, clean the rest later.
                summary.first_dirty_offset = first_dirty;
                return Ok((summary.segments_cleaned > 0).then_some(summary));
            };
            summary.cleaned_end_offset = group[group.len() - 1].next_offset();
            summary.segments_cleaned += group.len();
            summary.bytes_before += group.iter().map(|s| s.size_bytes()).sum::<u64>();
            summary.bytes_after += bytes_after;
            summary.batches_rewritten += rewritten;
        }
        Ok(Some(summary))
    }

    /// Cleans `group` (consecutive sealed segments) into one segment and swaps it in. Returns
    /// its size and the batches rewritten, or `None` when the log changed meanwhile (the
    /// `.cleaned` files are then removed).
    async fn clean_group(
        &self,
        group: &[Rc<LogSegment>],
        context: &FilterContext<'_>,
        last_batches: &HashMap<i64, i64>,
    ) -> Result<Option<(u64, u64)>, LogError> {
        let base_offset = group[0].base_offset();
        let end_offset = group[group.len() - 1].next_offset();
        let files = SegmentFiles::new(&self.dir, base_offset);
        let cleaned_log = files.with_suffix(LOG_FILE_SUFFIX, CLEANED_FILE_SUFFIX);
        let mut writer = DmaStreamWriterBuilder::new(open_dma(&cleaned_log, true).await?)
            .with_buffer_size(CLEANED_WRITE_BUFFER_BYTES)
            .build();
        let log_config = self.config();
        let mut state = SegmentState::empty(base_offset, &log_config);
        state.created_ms = group
            .iter()
            .map(|s| s.state().created_ms)
            .max()
            .unwrap_or(state.created_ms);
        let mut scratch = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut rewritten = 0u64;
        for segment in group {
            let mut reader = BatchReader::new(segment);
            while let Some(chunk) = reader.next_chunk().await? {
                for (local, header) in BatchIter::new(&chunk) {
                    let bytes = &chunk[local..local + header.size_bytes()];
                    let context = FilterContext {
                        last_batch_of_producer: last_batches.get(&header.producer_id)
                            == Some(&header.last_offset()),
                        ..*context
                    };
                    let outcome = filter_batch(&header, bytes, &context, &mut scratch)
                        .map_err(|e| clean_error(segment, &header, e))?;
                    let written = match &outcome {
                        BatchOutcome::KeepWhole => bytes,
                        BatchOutcome::Rewrite(batch) => batch.as_slice(),
                        BatchOutcome::Drop => &[],
                    };
                    if !matches!(outcome, BatchOutcome::KeepWhole) {
                        rewritten += 1;
                    }
                    if written.is_empty() {
                        continue;
                    }
                    let out_header = RecordBatchHeader::parse(written)
                        .expect("invariant: the cleaner writes whole batch headers");
                    assert_eq!(
                        (out_header.base_offset, out_header.last_offset()),
                        (header.base_offset, header.last_offset()),
                        "invariant: cleaning keeps a batch's base and last offsets"
                    );
                    let position = state.size_bytes;
                    record_batch_after_gap(
                        &mut state,
                        &out_header,
                        position,
                        log_config.index_interval_bytes,
                    );
                    state.size_bytes = position + written.len() as u64;
                    pending.extend_from_slice(written);
                }
                if !pending.is_empty() {
                    writer
                        .write_all(&pending)
                        .await
                        .map_err(|e| LogError::io("write", &cleaned_log, e))?;
                    pending.clear();
                }
                glommio::yield_if_needed().await;
            }
        }
        writer
            .close()
            .await
            .map_err(|e| LogError::io("close", &cleaned_log, e))?;
        assert!(
            state.next_offset <= end_offset,
            "invariant: a cleaned segment ends within its group"
        );
        state.next_offset = end_offset;
        if state.offset_of_max_timestamp >= 0 {
            let (timestamp, offset) = (state.max_timestamp, state.offset_of_max_timestamp);
            state.time_index.maybe_append(timestamp, offset, true);
        }
        write_file(
            &files.with_suffix(INDEX_FILE_SUFFIX, CLEANED_FILE_SUFFIX),
            &state.offset_index.to_bytes(),
        )
        .await?;
        write_file(
            &files.with_suffix(TIME_INDEX_FILE_SUFFIX, CLEANED_FILE_SUFFIX),
            &state.time_index.to_bytes(),
        )
        .await?;
        state.indexes_dirty = false;
        // The group's aborted transactions move to the cleaned segment's `.txnindex` (the
        // cleaner keeps transactional and control batches whole, so every entry still holds).
        let group_end = group[group.len() - 1].next_offset();
        let aborted: Vec<super::AbortedTxn> = self
            .aborted_txns()
            .into_iter()
            .filter(|t| t.last_offset >= base_offset && t.last_offset < group_end)
            .collect();
        let cleaned_txn_index =
            files.with_suffix(super::TXN_INDEX_FILE_SUFFIX, CLEANED_FILE_SUFFIX);
        super::txn_index::write_txn_index(&cleaned_txn_index, &aborted)?;
        let size_bytes = state.size_bytes;
        let file = open_dma(&cleaned_log, false).await?;
        let cleaned = Rc::new(LogSegment::from_parts(
            base_offset,
            files.path(LOG_FILE_SUFFIX),
            file,
            state,
        ));
        if !self.commit_swap(group, cleaned, &files)? {
            files.remove_suffixed(CLEANED_FILE_SUFFIX)?;
            return Ok(None);
        }
        let finished = match self.sync_dir().await {
            Ok(()) => finish_swap(&self.dir, group, &files),
            Err(e) => Err(e),
        };
        self.swapping.set(false);
        finished?;
        self.sync_dir().await?;
        tracing::debug!(
            dir = %self.dir.display(), base_offset, segments = group.len(), size_bytes,
            "cleaned segments"
        );
        Ok(Some((size_bytes, rewritten)))
    }

    /// The commit point: when the segment list still holds `group` and the log is open, renames
    /// the `.cleaned` files to `.swap` (the `.log` last) and puts `cleaned` in the group's place,
    /// without an await. False (nothing changed) otherwise.
    fn commit_swap(
        &self,
        group: &[Rc<LogSegment>],
        cleaned: Rc<LogSegment>,
        files: &SegmentFiles,
    ) -> Result<bool, LogError> {
        if self.is_closed() {
            return Ok(false);
        }
        // The cleaned group's files go away: read-aheads must not keep them open.
        super::read_ahead::forget_log(self.read_ahead_id);
        let mut segments = self.segments.borrow_mut();
        let Some(start) = segments.iter().position(|s| Rc::ptr_eq(s, &group[0])) else {
            return Ok(false);
        };
        let holds_group = segments.len() > start + group.len()
            && segments[start..start + group.len()]
                .iter()
                .zip(group)
                .all(|(a, b)| Rc::ptr_eq(a, b));
        if !holds_group {
            return Ok(false);
        }
        for suffix in [
            INDEX_FILE_SUFFIX,
            TIME_INDEX_FILE_SUFFIX,
            super::TXN_INDEX_FILE_SUFFIX,
            LOG_FILE_SUFFIX,
        ] {
            let cleaned = files.with_suffix(suffix, CLEANED_FILE_SUFFIX);
            // A group without aborted transactions has no `.txnindex`.
            if suffix == super::TXN_INDEX_FILE_SUFFIX && !cleaned.exists() {
                continue;
            }
            rename(&cleaned, &files.with_suffix(suffix, SWAP_FILE_SUFFIX))?;
        }
        assert_eq!(
            cleaned.base_offset(),
            group[0].base_offset(),
            "invariant: a cleaned segment takes its group's base offset"
        );
        assert_eq!(
            cleaned.next_offset(),
            group[group.len() - 1].next_offset(),
            "invariant: a cleaned segment ends where its group ended"
        );
        segments.splice(start..start + group.len(), [cleaned]);
        assert!(
            segments.len() >= 2,
            "invariant: the active segment is never cleaned"
        );
        self.swapping.set(true);
        self.dir_changes.set(self.dir_changes.get() + 1);
        Ok(true)
    }
}

/// After the commit point was made durable: removes the old segments' files (the first one's
/// are replaced by the renames) and renames the `.swap` files to their final names (the `.log`
/// last), without an await.
fn finish_swap(dir: &Path, group: &[Rc<LogSegment>], files: &SegmentFiles) -> Result<(), LogError> {
    for old in &group[1..] {
        SegmentFiles::new(dir, old.base_offset()).remove()?;
    }
    for suffix in [
        INDEX_FILE_SUFFIX,
        TIME_INDEX_FILE_SUFFIX,
        super::TXN_INDEX_FILE_SUFFIX,
        LOG_FILE_SUFFIX,
    ] {
        let swap = files.with_suffix(suffix, SWAP_FILE_SUFFIX);
        if suffix == super::TXN_INDEX_FILE_SUFFIX && !swap.exists() {
            continue;
        }
        rename(&swap, &files.path(suffix))?;
    }
    Ok(())
}

/// Kafka's `LogCleanerManager.firstUncleanableDirtyOffset`: the active segment's base, or the
/// base of the first dirty segment holding a record younger than `min.compaction.lag.ms`.
fn first_uncleanable_offset(
    sealed: &[Rc<LogSegment>],
    active: &LogSegment,
    first_dirty: i64,
    config: &CleanerConfig,
    now_ms: i64,
) -> i64 {
    if config.min_compaction_lag_ms <= 0 {
        return active.base_offset();
    }
    let lag_start = now_ms.saturating_sub(config.min_compaction_lag_ms);
    sealed
        .iter()
        .filter(|s| s.next_offset() > first_dirty)
        .find(|s| {
            let largest = s
                .max_timestamp_and_offset()
                .map_or(s.state().created_ms, |(t, _)| t);
            largest > lag_start
        })
        .map_or(active.base_offset(), |s| s.base_offset())
}

/// Clean and cleanable bytes, and the first dirty segment's first batch timestamp.
async fn dirty_stats(
    sealed: &[Rc<LogSegment>],
    first_dirty: i64,
    uncleanable: i64,
) -> Result<DirtyStats, LogError> {
    let mut stats = DirtyStats {
        clean_bytes: 0,
        cleanable_bytes: 0,
        first_dirty_timestamp_ms: -1,
    };
    for segment in sealed {
        if segment.next_offset() <= first_dirty {
            stats.clean_bytes += segment.size_bytes();
        } else if segment.base_offset() < uncleanable {
            if stats.cleanable_bytes == 0 && segment.size_bytes() > 0 {
                stats.first_dirty_timestamp_ms = first_batch_timestamp(segment).await?;
            }
            stats.cleanable_bytes += segment.size_bytes();
        }
    }
    Ok(stats)
}

/// The first batch's max timestamp (Kafka's `LogSegment.getFirstBatchTimestamp`), -1 if none.
async fn first_batch_timestamp(segment: &LogSegment) -> Result<i64, LogError> {
    if let Some(t) = segment.state().first_batch_timestamp {
        return Ok(t);
    }
    Ok(segment
        .find_batch(0, |_| true)
        .await?
        .map_or(-1, |(_, h)| h.max_timestamp))
}

/// Kafka's `Cleaner.buildOffsetMap`: maps each key of `dirty` (from `first_dirty`, below
/// `uncleanable`) to its latest offset, batch by batch, until the map is full. Returns the map
/// and the first offset it does not cover.
async fn build_offset_map(
    dirty: &[Rc<LogSegment>],
    first_dirty: i64,
    uncleanable: i64,
    config: &CleanerConfig,
) -> Result<(OffsetMap, i64), LogError> {
    let mut map = OffsetMap::new(config.dedupe_buffer_bytes);
    let mut map_end = first_dirty;
    let mut scratch = Vec::new();
    for segment in dirty {
        let mut reader = BatchReader::new(segment);
        while let Some(chunk) = reader.next_chunk().await? {
            for (local, header) in BatchIter::new(&chunk) {
                if header.last_offset() < first_dirty || header.base_offset >= uncleanable {
                    continue;
                }
                if header.is_control() || header.is_transactional() {
                    map_end = header.next_offset();
                    continue;
                }
                let bytes = &chunk[local..local + header.size_bytes()];
                let section = records_section(&header, bytes, &mut scratch)
                    .map_err(|e| clean_error(segment, &header, e))?;
                let records = split_records(&header, section)
                    .map_err(|e| clean_error(segment, &header, e))?;
                let needed = map.bytes_needed(records.iter().filter_map(|r| r.key));
                if !map.has_room(needed) {
                    return Ok((map, map_end));
                }
                for record in &records {
                    if let Some(key) = record.key {
                        map.put(key, record.offset);
                    }
                }
                map_end = header.next_offset();
            }
            glommio::yield_if_needed().await;
        }
        map_end = map_end.max(segment.next_offset().min(uncleanable));
    }
    Ok((map, map_end))
}

/// Each producer id's last batch (its last offset) in the log: those batches stay, at least
/// as empty batches, so the producer's sequence survives (Kafka keeps the last batch of each
/// active producer).
async fn last_batch_of_producers(
    segments: &[Rc<LogSegment>],
) -> Result<HashMap<i64, i64>, LogError> {
    let mut last = HashMap::new();
    for segment in segments {
        segment
            .find_batch(0, |h| {
                if h.has_producer_id() {
                    last.insert(h.producer_id, h.last_offset());
                }
                false
            })
            .await?;
        glommio::yield_if_needed().await;
    }
    Ok(last)
}

/// A stored batch the cleaner could not read, as a [`LogError`].
fn clean_error(segment: &LogSegment, header: &RecordBatchHeader, error: CleanError) -> LogError {
    LogError::RecordDecode {
        path: segment.log_path().to_path_buf(),
        base_offset: header.base_offset,
        reason: error.to_string(),
    }
}

/// Reads a sealed segment in chunks of whole batches.
struct BatchReader<'a> {
    segment: &'a LogSegment,
    position: u64,
    size: u64,
}

impl<'a> BatchReader<'a> {
    fn new(segment: &'a LogSegment) -> BatchReader<'a> {
        BatchReader {
            segment,
            position: 0,
            size: segment.size_bytes(),
        }
    }

    /// The next chunk: whole batches, at least one, about [`SCAN_CHUNK_BYTES`]; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<ReadResult>, LogError> {
        let mut want = SCAN_CHUNK_BYTES;
        while self.position < self.size {
            let length = (self.size - self.position).min(want as u64) as usize;
            let data = self.segment.read_at(self.position, length).await?;
            let mut iter = BatchIter::new(&data);
            let consumed = iter
                .by_ref()
                .last()
                .map_or(0, |(local, h)| local + h.size_bytes());
            if consumed > 0 {
                self.position += consumed as u64;
                return Ok(Some(data));
            }
            match iter.error() {
                Some(BatchError::Truncated { needed, .. })
                    if self.position + *needed as u64 <= self.size && *needed > want =>
                {
                    want = *needed;
                }
                _ => {
                    return Err(LogError::CorruptSegment {
                        path: self.segment.log_path().to_path_buf(),
                        position: self.position,
                        reason: "no whole batch where the cleaner expected one".to_string(),
                    })
                }
            }
        }
        Ok(None)
    }
}

/// The three file names of the segment at one base offset, and their suffixed variants.
struct SegmentFiles {
    dir: PathBuf,
    base_offset: i64,
}

impl SegmentFiles {
    fn new(dir: &Path, base_offset: i64) -> SegmentFiles {
        SegmentFiles {
            dir: dir.to_path_buf(),
            base_offset,
        }
    }

    fn path(&self, suffix: &str) -> PathBuf {
        segment_file_path(&self.dir, self.base_offset, suffix)
    }

    fn with_suffix(&self, suffix: &str, extra: &str) -> PathBuf {
        let mut name = self.path(suffix).into_os_string();
        name.push(extra);
        PathBuf::from(name)
    }

    /// Removes the three files (missing ones are fine).
    fn remove(&self) -> Result<(), LogError> {
        for suffix in [
            LOG_FILE_SUFFIX,
            INDEX_FILE_SUFFIX,
            TIME_INDEX_FILE_SUFFIX,
            super::TXN_INDEX_FILE_SUFFIX,
        ] {
            remove_if_exists(&self.path(suffix))?;
        }
        Ok(())
    }

    /// Removes the three files with `extra` appended to their names.
    fn remove_suffixed(&self, extra: &str) -> Result<(), LogError> {
        for suffix in [
            LOG_FILE_SUFFIX,
            INDEX_FILE_SUFFIX,
            TIME_INDEX_FILE_SUFFIX,
            super::TXN_INDEX_FILE_SUFFIX,
        ] {
            remove_if_exists(&self.with_suffix(suffix, extra))?;
        }
        Ok(())
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), LogError> {
    std::fs::rename(from, to).map_err(|source| LogError::Rename {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })
}

/// Removes `path`; a missing file is fine.
pub(super) fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests;
