//! Loading a partition directory at start-up (Kafka's `LogLoader`).
//!
//! For every `<base_offset:020>.log` the offset and time indexes are loaded and checked (entry
//! size, increasing offsets, positions inside the file); a missing or bad index is rebuilt by
//! scanning the batches. The last (active) segment is always scanned to find its end; with
//! `recover` (after an unclean shutdown) that scan checks every CRC-32C. A scan stops at the
//! first torn or corrupt batch, or at a batch whose base offset is not the expected next offset,
//! and the file is truncated there: logged with `tracing::warn!`, or at debug level when all that
//! is cut is zero padding (O_DIRECT appends write whole pages, so an unclean stop leaves zeros
//! past the logical end). Segments after a truncated one are deleted, as Kafka's `LogLoader.recoverLog` does. Stray `.cleaned`, `.swap` and `.deleted`
//! files are removed.

use std::path::{Path, PathBuf};

use glommio::io::DmaFile;

use super::offset_index::OffsetIndex;
use super::segment::{
    align_down, now_ms, open_dma, read_file, record_batch, segment_file_path, LogSegment,
    SegmentState, INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, SCAN_CHUNK_BYTES, TIME_INDEX_FILE_SUFFIX,
};
use super::time_index::TimeIndex;
use super::{LogConfig, LogError};
use crate::protocol::record_batch::{
    BatchError, BatchIter, RecordBatchHeader, MAGIC_V2, RECORD_BATCH_HEADER_BYTES,
};

/// Suffixes of temporary files Kafka leaves behind and deletes at load
/// (`LogFileUtils.CLEANED_FILE_SUFFIX`, `SWAP_FILE_SUFFIX`, `DELETED_FILE_SUFFIX`).
const STRAY_SUFFIXES: [&str; 3] = [".cleaned", ".swap", ".deleted"];

/// Opens every segment of `dir` in base-offset order; the result is never empty (a directory
/// without segments gets an empty segment at offset 0).
pub(crate) async fn load_segments(
    dir: &Path,
    config: &LogConfig,
    recover: bool,
) -> Result<Vec<LogSegment>, LogError> {
    let base_offsets = list_segments(dir)?;
    let mut segments: Vec<LogSegment> = Vec::with_capacity(base_offsets.len());
    for (i, &base_offset) in base_offsets.iter().enumerate() {
        let next_base = base_offsets.get(i + 1).copied();
        let (segment, truncated) =
            load_segment(dir, base_offset, next_base, config, recover).await?;
        if let Some(previous) = segments.last() {
            let expected = previous.next_offset();
            if segment.base_offset() != expected {
                tracing::warn!(
                    path = %segment.log_path().display(), base_offset = segment.base_offset(), expected,
                    "segment does not continue the previous one; deleting it and every later segment"
                );
                delete_segments_from(dir, &base_offsets[i..]).await?;
                break;
            }
        }
        segments.push(segment);
        if truncated && next_base.is_some() {
            tracing::warn!(
                path = %segments.last().map(|s| s.log_path().display().to_string()).unwrap_or_default(),
                "segment was truncated; deleting every later segment"
            );
            delete_segments_from(dir, &base_offsets[i + 1..]).await?;
            break;
        }
    }
    if segments.is_empty() {
        segments.push(LogSegment::create(dir, 0, config).await?);
    }
    Ok(segments)
}

/// Base offsets of the `.log` files in `dir`, sorted; removes stray temporary files and index
/// files without a `.log`.
fn list_segments(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("read_dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("read_dir", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if STRAY_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            tracing::warn!(path = %path.display(), "deleting stray temporary file");
            std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, e))?;
            continue;
        }
        let Some((stem, suffix)) = name.split_once('.') else {
            continue;
        };
        let Some(base_offset) = parse_base_offset(stem) else {
            continue;
        };
        match suffix {
            LOG_FILE_SUFFIX => logs.push(base_offset),
            INDEX_FILE_SUFFIX | TIME_INDEX_FILE_SUFFIX => indexes.push((base_offset, path)),
            _ => {}
        }
    }
    logs.sort_unstable();
    for (base_offset, path) in indexes {
        if logs.binary_search(&base_offset).is_err() {
            tracing::warn!(path = %path.display(), "deleting index without a .log");
            std::fs::remove_file(&path).map_err(|e| LogError::io("remove", &path, e))?;
        }
    }
    Ok(logs)
}

/// The base offset in a segment file stem: exactly 20 decimal digits.
fn parse_base_offset(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Opens one segment; the flag says whether its `.log` was truncated.
async fn load_segment(
    dir: &Path,
    base_offset: i64,
    next_base: Option<i64>,
    config: &LogConfig,
    recover: bool,
) -> Result<(LogSegment, bool), LogError> {
    let log_path = segment_file_path(dir, base_offset, LOG_FILE_SUFFIX);
    let file = open_dma(&log_path, false).await?;
    let file_size = file
        .file_size()
        .await
        .map_err(|e| LogError::io("stat", &log_path, e))?;
    let is_last = next_base.is_none();
    let indexes = load_indexes(dir, base_offset, next_base, config, file_size).await?;
    let created_ms = modified_ms(&log_path);
    let (mut state, truncated) = match indexes {
        Some((offset_index, time_index)) if !is_last => {
            let last = time_index.last_entry();
            let state = SegmentState {
                size_bytes: file_size,
                tail: Vec::new(),
                next_offset: next_base.unwrap_or(base_offset),
                offset_index,
                time_index,
                bytes_since_last_index_entry: 0,
                max_timestamp: last.map_or(-1, |e| e.timestamp),
                offset_of_max_timestamp: last.map_or(-1, |e| e.offset),
                first_batch_timestamp: None,
                created_ms,
                indexes_dirty: false,
            };
            (state, false)
        }
        indexes => {
            let check_crc = recover && (is_last || indexes.is_none());
            let (start, full) = match indexes {
                Some((offset_index, time_index)) if !recover => {
                    match tail_scan_state(&file, &log_path, base_offset, offset_index, time_index)
                        .await?
                    {
                        Some(state) => (state, false),
                        None => (SegmentState::empty(base_offset, config), true),
                    }
                }
                _ => (SegmentState::empty(base_offset, config), true),
            };
            let mut scan =
                scan_segment(&file, &log_path, start, file_size, config, check_crc).await?;
            let time_index_beyond_end = scan
                .state
                .time_index
                .last_entry()
                .is_some_and(|e| e.offset >= scan.state.next_offset);
            if !full && (scan.stop_reason.is_some() || time_index_beyond_end) {
                tracing::warn!(path = %log_path.display(), "indexes disagree with the log tail, rebuilding");
                scan = scan_segment(
                    &file,
                    &log_path,
                    SegmentState::empty(base_offset, config),
                    file_size,
                    config,
                    check_crc,
                )
                .await?;
            }
            let truncated = scan.valid_bytes < file_size;
            if truncated {
                let bytes = file_size - scan.valid_bytes;
                if is_zeros(&file, &log_path, scan.valid_bytes, file_size).await? {
                    // O_DIRECT appends write whole pages: after an unclean stop the file ends
                    // in the zeros of the last page (or of a write that never reached the disk).
                    tracing::debug!(
                        path = %log_path.display(),
                        position = scan.valid_bytes,
                        "trimmed {bytes} bytes of zero padding"
                    );
                } else {
                    tracing::warn!(
                        path = %log_path.display(),
                        position = scan.valid_bytes,
                        bytes,
                        reason = %scan.stop_reason.as_deref().unwrap_or("unknown"),
                        "truncating torn or corrupt tail of segment"
                    );
                }
                file.truncate(scan.valid_bytes)
                    .await
                    .map_err(|e| LogError::io("truncate", &log_path, e))?;
                file.fdatasync()
                    .await
                    .map_err(|e| LogError::io("fdatasync", &log_path, e))?;
            }
            let mut state = scan.state;
            state.created_ms = created_ms;
            // A sealed segment's final time-index entry holds its largest timestamp.
            if !is_last && state.offset_of_max_timestamp >= 0 {
                state.time_index.maybe_append(
                    state.max_timestamp,
                    state.offset_of_max_timestamp,
                    true,
                );
            }
            (state, truncated)
        }
    };
    if is_last || truncated {
        state.tail = read_tail(&file, &log_path, state.size_bytes).await?;
    }
    let rebuilt = state.indexes_dirty;
    let segment = LogSegment::from_parts(base_offset, log_path, file, state);
    if rebuilt && !is_last && !truncated {
        segment.write_indexes().await?;
    }
    Ok((segment, truncated))
}

/// Loads and checks both index files; `None` when either is missing or bad (logged).
async fn load_indexes(
    dir: &Path,
    base_offset: i64,
    next_base: Option<i64>,
    config: &LogConfig,
    log_size_bytes: u64,
) -> Result<Option<(OffsetIndex, TimeIndex)>, LogError> {
    let index_path = segment_file_path(dir, base_offset, INDEX_FILE_SUFFIX);
    let time_index_path = segment_file_path(dir, base_offset, TIME_INDEX_FILE_SUFFIX);
    let (Some(offset_bytes), Some(time_bytes)) = (
        read_file(&index_path).await?,
        read_file(&time_index_path).await?,
    ) else {
        if log_size_bytes > 0 {
            tracing::info!(path = %index_path.display(), "index missing, rebuilding");
        }
        return Ok(None);
    };
    let max_relative = next_base.map(|next| next - base_offset - 1);
    let offset_index = OffsetIndex::from_bytes(
        base_offset,
        config.segment_index_bytes,
        &offset_bytes,
        log_size_bytes,
    )
    .and_then(|index| match (index.last_entry(), next_base) {
        (Some(last), Some(next)) if last.offset >= next => {
            Err(format!("offset {} beyond next segment {next}", last.offset))
        }
        _ => Ok(index),
    });
    let offset_index = match offset_index {
        Ok(index) => index,
        Err(reason) => {
            tracing::warn!(path = %index_path.display(), %reason, "bad offset index, rebuilding");
            return Ok(None);
        }
    };
    let time_index = match TimeIndex::from_bytes(
        base_offset,
        config.segment_index_bytes,
        &time_bytes,
        max_relative,
    ) {
        Ok(index) if index.is_empty() && log_size_bytes > 0 => {
            tracing::info!(path = %time_index_path.display(), "empty time index for a non-empty segment, rebuilding");
            return Ok(None);
        }
        Ok(index) => index,
        Err(reason) => {
            tracing::warn!(path = %time_index_path.display(), %reason, "bad time index, rebuilding");
            return Ok(None);
        }
    };
    Ok(Some((offset_index, time_index)))
}

/// What a batch-by-batch scan of a `.log` found.
struct ScanResult {
    /// Bookkeeping rebuilt from the valid batches (indexes included).
    state: SegmentState,
    /// Length of the valid prefix of the file in bytes.
    valid_bytes: u64,
    /// Why the scan stopped before the end of the file.
    stop_reason: Option<String>,
}

/// Walks the batches of the `.log` (Kafka's `LogSegment.recover`), adding index entries,
/// optionally checking CRCs, and stopping at the first bad batch.
///
/// `state` is where the scan starts: `size_bytes` is the position of the first batch to read and
/// `next_offset` its expected base offset ([`SegmentState::empty`] for a full scan).
async fn scan_segment(
    file: &DmaFile,
    log_path: &Path,
    mut state: SegmentState,
    file_size: u64,
    config: &LogConfig,
    check_crc: bool,
) -> Result<ScanResult, LogError> {
    let mut position = state.size_bytes;
    let index_lengths = (state.offset_index.len(), state.time_index.len());
    let mut want = SCAN_CHUNK_BYTES;
    let stop_reason = loop {
        if position >= file_size {
            break None;
        }
        let length = (file_size - position).min(want as u64) as usize;
        let data = file
            .read_at(position, length)
            .await
            .map_err(|e| LogError::io("read", log_path, e))?;
        let mut iter = if check_crc {
            BatchIter::with_crc(&data)
        } else {
            BatchIter::new(&data)
        };
        let mut stop = None;
        for (local, header) in iter.by_ref() {
            let problem = batch_problem(
                &header,
                &state,
                base_offset_of(&state),
                position + local as u64,
            );
            if let Some(reason) = problem {
                stop = Some(reason);
                break;
            }
            if state.offset_index.is_full() {
                stop = Some("offset index full (segment.index.bytes)".to_string());
                break;
            }
            record_batch(
                &mut state,
                &header,
                position + local as u64,
                config.index_interval_bytes,
            );
            state.size_bytes = position + local as u64 + header.size_bytes() as u64;
        }
        if stop.is_some() {
            break stop;
        }
        let consumed = state.size_bytes - position;
        want = SCAN_CHUNK_BYTES;
        match iter.error() {
            None if consumed as usize == data.len() => position = state.size_bytes,
            Some(BatchError::Truncated { needed, available }) => {
                let at = state.size_bytes;
                let fits_in_file = at + *needed as u64 <= file_size;
                if !fits_in_file || (consumed == 0 && *needed <= *available) || data.len() < length
                {
                    break Some(format!(
                        "incomplete batch: need {needed} bytes, file has {}",
                        file_size - at
                    ));
                }
                position = at;
                want = want.max(*needed);
            }
            Some(error) => break Some(error.to_string()),
            None => break Some("short read".to_string()),
        }
    };
    assert!(
        state.size_bytes <= file_size,
        "valid prefix within the file"
    );
    state.indexes_dirty |= index_lengths != (state.offset_index.len(), state.time_index.len());
    Ok(ScanResult {
        valid_bytes: state.size_bytes,
        state,
        stop_reason,
    })
}

/// The segment base offset, recovered from the indexes' base (both indexes share it).
fn base_offset_of(state: &SegmentState) -> i64 {
    state.offset_index.base_offset()
}

/// The state from which to scan only the tail of a cleanly closed active segment (Kafka's
/// `LogSegment.readNextOffset`): the loaded indexes, positioned at the batch of the last
/// offset-index entry. `None` when the files disagree (the caller then scans everything).
async fn tail_scan_state(
    file: &DmaFile,
    log_path: &Path,
    base_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
) -> Result<Option<SegmentState>, LogError> {
    let Some(last_entry) = offset_index.last_entry() else {
        return Ok(None);
    };
    let read_header = |position: u64| async move {
        let data = file
            .read_at(position, RECORD_BATCH_HEADER_BYTES)
            .await
            .map_err(|e| LogError::io("read", log_path, e))?;
        Ok::<_, LogError>(RecordBatchHeader::parse(&data).ok())
    };
    let (Some(first), Some(indexed)) = (
        read_header(0).await?,
        read_header(last_entry.position as u64).await?,
    ) else {
        return Ok(None);
    };
    if first.base_offset != base_offset
        || indexed.last_offset() != last_entry.offset
        || indexed.last_offset_delta < 0
        || indexed.base_offset < base_offset
    {
        return Ok(None);
    }
    let last_time = time_index.last_entry();
    Ok(Some(SegmentState {
        size_bytes: last_entry.position as u64,
        tail: Vec::new(),
        next_offset: indexed.base_offset,
        offset_index,
        time_index,
        bytes_since_last_index_entry: 0,
        max_timestamp: last_time.map_or(-1, |e| e.timestamp),
        offset_of_max_timestamp: last_time.map_or(-1, |e| e.offset),
        first_batch_timestamp: Some(first.max_timestamp),
        created_ms: now_ms(),
        indexes_dirty: false,
    }))
}

/// Why a well-framed batch cannot be kept at `position`, if it cannot: wrong magic, negative
/// `last_offset_delta`, a `record_count` that disagrees, a base offset that is not the expected
/// next offset, an end beyond `i32::MAX` (index positions and relative offsets are `i32`), or a
/// loaded time index that contradicts it. Checked before `record_batch`, whose assertions
/// must never see bytes from disk they would reject.
fn batch_problem(
    header: &RecordBatchHeader,
    state: &SegmentState,
    base_offset: i64,
    position: u64,
) -> Option<String> {
    let expected = state.next_offset;
    if header.magic != MAGIC_V2 {
        return Some(format!("magic {}", header.magic));
    }
    if header.last_offset_delta < 0
        || header.record_count as i64 != header.last_offset_delta as i64 + 1
    {
        return Some(format!(
            "last_offset_delta {} with record_count {}",
            header.last_offset_delta, header.record_count
        ));
    }
    if header.base_offset != expected {
        return Some(format!(
            "base offset {} where {expected} was expected",
            header.base_offset
        ));
    }
    if position + header.size_bytes() as u64 > i32::MAX as u64 {
        return Some("segment larger than i32::MAX bytes".to_string());
    }
    if header.last_offset() - base_offset > i32::MAX as i64 {
        return Some(format!(
            "offset {} too far from base {base_offset}",
            header.last_offset()
        ));
    }
    // A time index loaded from disk must not name a later offset than a batch that beats its
    // largest timestamp (only possible when the file is wrong; the caller then rebuilds).
    let time_entry_offset = state.time_index.last_entry().map_or(-1, |e| e.offset);
    if header.max_timestamp > state.max_timestamp && header.last_offset() < time_entry_offset {
        return Some(format!(
            "time index names offset {time_entry_offset} past a larger timestamp"
        ));
    }
    None
}

/// True when the bytes `[start, end)` of the file are all zero (padding, not data).
async fn is_zeros(file: &DmaFile, log_path: &Path, start: u64, end: u64) -> Result<bool, LogError> {
    let mut position = start;
    while position < end {
        let length = (end - position).min(SCAN_CHUNK_BYTES as u64) as usize;
        let data = file
            .read_at(position, length)
            .await
            .map_err(|e| LogError::io("read", log_path, e))?;
        if data.is_empty() {
            return Ok(false);
        }
        if data.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        position += data.len() as u64;
    }
    Ok(true)
}

/// The partial last page `[align_down(size), size)` of the file.
async fn read_tail(file: &DmaFile, log_path: &Path, size_bytes: u64) -> Result<Vec<u8>, LogError> {
    let start = align_down(size_bytes, file.alignment());
    if start == size_bytes {
        return Ok(Vec::new());
    }
    let data = file
        .read_at(start, (size_bytes - start) as usize)
        .await
        .map_err(|e| LogError::io("read", log_path, e))?;
    if data.len() as u64 != size_bytes - start {
        return Err(LogError::CorruptSegment {
            path: log_path.to_path_buf(),
            position: start,
            reason: "file shorter than its logical size".to_string(),
        });
    }
    Ok(data.to_vec())
}

/// Deletes the files of the segments with these base offsets.
async fn delete_segments_from(dir: &Path, base_offsets: &[i64]) -> Result<(), LogError> {
    for &base_offset in base_offsets {
        for suffix in [LOG_FILE_SUFFIX, INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX] {
            let path: PathBuf = segment_file_path(dir, base_offset, suffix);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("remove", &path, e)),
            }
        }
    }
    Ok(())
}

/// The file's modification time in ms, or now when it cannot be read.
fn modified_ms(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(now_ms, |d| d.as_millis() as i64)
}
