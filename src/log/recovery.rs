//! Loading a partition directory at start-up (Kafka's `LogLoader`).
//!
//! For every `<base_offset:020>.log` the offset and time indexes are loaded and checked (entry
//! size, increasing offsets, positions inside the file); a missing or bad index is rebuilt by
//! scanning the batches. The last (active) segment is always scanned to find its end; with
//! `recover` (after an unclean shutdown) that scan checks every CRC-32C. A scan stops at the
//! first torn or corrupt batch, or at a batch whose base offset is not the expected next offset,
//! and the file is truncated there: logged with `tracing::warn!`, or at debug level when all that
//! is cut is zero padding (O_DIRECT appends write whole pages, so an unclean stop leaves zeros
//! past the logical end). Segments after a truncated one are deleted, as Kafka's `LogLoader.recoverLog` does.
//!
//! The log cleaner's swaps are finished first (Kafka's `LogLoader` swap handling): a
//! `<base>.log.swap` was committed, so the old segments it replaces (base offsets in
//! `[base, its next offset)`) are removed and the `.swap` files renamed to their final names;
//! then stray `.cleaned`, `.swap` (index swaps of a commit that did not reach its `.log`) and
//! `.deleted` files are removed. Sealed segments may have offset gaps and batches with fewer
//! records than their offset range (compaction); only the active segment must be contiguous.

use std::path::{Path, PathBuf};

use glommio::io::DmaFile;

use super::log_cleaner::{remove_if_exists, SWAP_FILE_SUFFIX};
use super::offset_index::OffsetIndex;
use super::segment::{
    align_down, now_ms, open_dma, read_file, record_batch, record_batch_after_gap,
    segment_file_path, LogSegment, SegmentState, INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX,
    SCAN_CHUNK_BYTES, TIME_INDEX_FILE_SUFFIX,
};
use super::time_index::TimeIndex;
use super::{IndexError, LogConfig, LogError};
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
    finish_swaps(dir)?;
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

/// Finishes every committed cleaner swap in `dir` (see the module doc): for each
/// `<base>.log.swap`, removes the segments with base offsets in `(base, next offset of the
/// swap)`, renames `<base>.index.swap` / `.timeindex.swap` when present (absent: already
/// renamed), then the `.log.swap`. Every step is idempotent, so a crash during this is finished
/// by the next start.
fn finish_swaps(dir: &Path) -> Result<(), LogError> {
    let log_swap_suffix = format!(".{LOG_FILE_SUFFIX}{SWAP_FILE_SUFFIX}");
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("read_dir", dir, e))?;
    let mut swaps = Vec::new();
    let mut logs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("read_dir", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(&log_swap_suffix) {
            swaps.extend(parse_base_offset(stem));
        } else if let Some(stem) = name.strip_suffix(&format!(".{LOG_FILE_SUFFIX}")) {
            logs.extend(parse_base_offset(stem));
        }
    }
    swaps.sort_unstable();
    for base_offset in swaps {
        let swap_log = suffixed(&segment_file_path(dir, base_offset, LOG_FILE_SUFFIX));
        let next_offset = next_offset_of_file(&swap_log, base_offset)?;
        tracing::warn!(
            path = %swap_log.display(), next_offset,
            "finishing an interrupted log cleaner swap"
        );
        let replaced: Vec<i64> = logs
            .iter()
            .copied()
            .filter(|&b| b > base_offset && b < next_offset)
            .collect();
        for old in replaced {
            for suffix in [
                LOG_FILE_SUFFIX,
                INDEX_FILE_SUFFIX,
                TIME_INDEX_FILE_SUFFIX,
                super::TXN_INDEX_FILE_SUFFIX,
            ] {
                remove_if_exists(&segment_file_path(dir, old, suffix))?;
            }
        }
        for suffix in [
            INDEX_FILE_SUFFIX,
            TIME_INDEX_FILE_SUFFIX,
            super::TXN_INDEX_FILE_SUFFIX,
            LOG_FILE_SUFFIX,
        ] {
            let target = segment_file_path(dir, base_offset, suffix);
            let swap = suffixed(&target);
            if swap.exists() {
                std::fs::rename(&swap, &target).map_err(|source| LogError::Rename {
                    from: swap.clone(),
                    to: target.clone(),
                    source,
                })?;
            }
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LogError::io("fsync_dir", dir, e))?;
    }
    Ok(())
}

/// `path` with [`SWAP_FILE_SUFFIX`] appended.
fn suffixed(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(SWAP_FILE_SUFFIX);
    PathBuf::from(name)
}

/// The offset after the last whole batch of a segment file (its base offset when it has none),
/// walking batch headers with positioned reads.
fn next_offset_of_file(path: &Path, base_offset: i64) -> Result<i64, LogError> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| LogError::io("open", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| LogError::io("stat", path, e))?
        .len();
    let mut next = base_offset;
    let mut position = 0u64;
    let mut buffer = [0u8; RECORD_BATCH_HEADER_BYTES];
    while position + RECORD_BATCH_HEADER_BYTES as u64 <= size {
        file.read_exact_at(&mut buffer, position)
            .map_err(|e| LogError::io("read", path, e))?;
        let Ok(header) = RecordBatchHeader::parse(&buffer) else {
            break;
        };
        if position + header.size_bytes() as u64 > size {
            break;
        }
        next = next.max(header.next_offset());
        position += header.size_bytes() as u64;
    }
    Ok(next)
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
            INDEX_FILE_SUFFIX | TIME_INDEX_FILE_SUFFIX | super::TXN_INDEX_FILE_SUFFIX => {
                indexes.push((base_offset, path))
            }
            _ => {}
        }
    }
    logs.sort_unstable();
    assert!(
        logs.windows(2).all(|w| w[0] < w[1]),
        "invariant: segment base offsets are unique (one 20-digit name each)"
    );
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
///
/// A sealed segment (not the last) with good indexes is trusted as it is; every other one is
/// scanned for its end ([`scan_for_end`]) and truncated there ([`truncate_to_valid`]).
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
    let indexes = load_indexes(dir, base_offset, next_base, config, file_size).await?;
    let created_ms = modified_ms(&log_path);
    let (mut state, truncated) = match (indexes, next_base) {
        (Some((offset_index, time_index)), Some(next_base)) => {
            let state = SegmentState {
                size_bytes: file_size,
                tail: Vec::new(),
                next_offset: next_base,
                bytes_since_last_index_entry: 0,
                max_timestamp: time_index.last_entry().map_or(-1, |e| e.timestamp),
                offset_of_max_timestamp: time_index.last_entry().map_or(-1, |e| e.offset),
                offset_index,
                time_index,
                first_batch_timestamp: None,
                created_ms,
                indexes_dirty: false,
            };
            (state, false)
        }
        (indexes, _) => {
            let is_last = next_base.is_none();
            let check_crc = recover && (is_last || indexes.is_none());
            let gaps_allowed = !is_last;
            let scan = scan_for_end(
                &file,
                &log_path,
                base_offset,
                indexes,
                file_size,
                config,
                recover,
                check_crc,
                gaps_allowed,
            )
            .await?;
            let truncated =
                truncate_to_valid(&file, &log_path, &scan, file_size, check_crc).await?;
            let mut state = scan.state;
            state.created_ms = created_ms;
            // A sealed (possibly compacted) segment ends where the next one starts.
            if let (Some(next_base), false) = (next_base, truncated) {
                if next_base >= state.next_offset {
                    state.next_offset = next_base;
                }
            }
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
    let is_last = next_base.is_none();
    if is_last || truncated {
        state.tail = read_tail(&file, &log_path, state.size_bytes).await?;
    }
    assert!(
        !truncated || state.size_bytes < file_size,
        "invariant: a truncated segment is shorter than its file was"
    );
    assert!(
        state.size_bytes <= file_size,
        "invariant: a segment's logical size lies inside its file"
    );
    let rebuilt = state.indexes_dirty;
    let segment = LogSegment::from_parts(base_offset, log_path, file, state);
    if rebuilt && !is_last && !truncated {
        segment.write_indexes().await?;
    }
    Ok((segment, truncated))
}

/// Scans a segment for its valid end: from the last offset-index entry when the indexes were
/// loaded ([`tail_scan_state`]), else from the start (after a crash, `recover`, a tail scan's
/// stop is the torn tail); a tail scan
/// whose result contradicts the loaded indexes is redone from the start with fresh ones.
#[allow(clippy::too_many_arguments)]
async fn scan_for_end(
    file: &DmaFile,
    log_path: &Path,
    base_offset: i64,
    indexes: Option<(OffsetIndex, TimeIndex)>,
    file_size: u64,
    config: &LogConfig,
    recover: bool,
    check_crc: bool,
    gaps_allowed: bool,
) -> Result<ScanResult, LogError> {
    // After an unclean stop too: the active segment's index files hold only entries of
    // batches that were durable when they were written (`Log::checkpoint_active_indexes`, or
    // a clean close before), so the CRC-checked scan starts at the last entry.
    let tail_start = match indexes {
        Some((offset_index, time_index)) => {
            tail_scan_state(file, log_path, base_offset, offset_index, time_index).await?
        }
        None => None,
    };
    let Some(start) = tail_start else {
        let empty = SegmentState::empty(base_offset, config);
        return scan_segment(
            file,
            log_path,
            empty,
            file_size,
            config,
            check_crc,
            gaps_allowed,
        )
        .await;
    };
    let scan = scan_segment(
        file,
        log_path,
        start,
        file_size,
        config,
        check_crc,
        gaps_allowed,
    )
    .await?;
    let time_index_beyond_end = scan
        .state
        .time_index
        .last_entry()
        .is_some_and(|e| e.offset >= scan.state.next_offset);
    // After a clean close the tail ends with a whole batch, so a stop means the indexes are
    // not this file's; after a crash it is the torn tail, truncated like a full scan's.
    if (scan.stop.is_none() || recover) && !time_index_beyond_end {
        return Ok(scan);
    }
    tracing::warn!(path = %log_path.display(), "indexes disagree with the log tail, rebuilding");
    let empty = SegmentState::empty(base_offset, config);
    scan_segment(
        file,
        log_path,
        empty,
        file_size,
        config,
        check_crc,
        gaps_allowed,
    )
    .await
}

/// Truncates the file to the scan's valid prefix when it is shorter (logged: at debug level
/// when only zero padding goes, else as a warning with the reason) and fdatasyncs it. Returns
/// true when it truncated. Asserts the scan's bookkeeping first: the prefix ends with a whole
/// batch ending at `valid_bytes`, or is empty. Then reads that batch back from the truncated
/// file and checks its header (and CRC with `check_crc`): a mismatch is a
/// [`LogError::CorruptSegment`], since what the disk returns is input, not an invariant.
async fn truncate_to_valid(
    file: &DmaFile,
    log_path: &Path,
    scan: &ScanResult,
    file_size: u64,
    check_crc: bool,
) -> Result<bool, LogError> {
    assert_scan_tail(scan, file_size);
    let truncated = scan.valid_bytes < file_size;
    if !truncated {
        return Ok(false);
    }
    let bytes = file_size - scan.valid_bytes;
    if is_zeros(file, log_path, scan.valid_bytes, file_size).await? {
        // O_DIRECT appends write whole pages: after an unclean stop the file ends in the zeros
        // of the last page (or of a write that never reached the disk).
        tracing::debug!(
            path = %log_path.display(),
            position = scan.valid_bytes,
            "trimmed {bytes} bytes of zero padding"
        );
    } else {
        let reason = scan.stop.as_ref().map(ToString::to_string);
        tracing::warn!(
            path = %log_path.display(),
            position = scan.valid_bytes,
            bytes,
            reason = %reason.as_deref().unwrap_or("unknown"),
            "truncating torn or corrupt tail of segment"
        );
    }
    file.truncate(scan.valid_bytes)
        .await
        .map_err(|e| LogError::io("truncate", log_path, e))?;
    file.fdatasync()
        .await
        .map_err(|e| LogError::io("fdatasync", log_path, e))?;
    if let Some((position, header)) = scan.last_batch {
        verify_batch_at(file, log_path, position, &header, check_crc).await?;
    }
    Ok(true)
}

/// Asserts what a scan guarantees about the prefix it keeps (invariant: after recovery
/// truncation the segment ends with a whole valid batch): it lies inside the file, its last
/// batch ends exactly at `valid_bytes` and its next offset is the segment's, and with no batch
/// kept nothing is added to where the scan started.
fn assert_scan_tail(scan: &ScanResult, file_size: u64) {
    assert!(
        scan.valid_bytes <= file_size,
        "invariant: the valid prefix lies inside the file"
    );
    assert_eq!(
        scan.valid_bytes, scan.state.size_bytes,
        "invariant: the valid prefix is the segment's logical size"
    );
    match scan.last_batch {
        Some((position, header)) => {
            assert_eq!(
                position + header.size_bytes() as u64,
                scan.valid_bytes,
                "invariant: the valid prefix ends with a whole batch"
            );
            assert_eq!(
                header.next_offset(),
                scan.state.next_offset,
                "invariant: the segment's next offset follows its last batch"
            );
        }
        None => assert_eq!(
            scan.valid_bytes, scan.start_position,
            "invariant: a scan that kept no batch keeps nothing"
        ),
    }
}

/// Reads the batch `header` describes back at `position` and checks that it is the same,
/// whole, and (with `check_crc`) intact.
async fn verify_batch_at(
    file: &DmaFile,
    log_path: &Path,
    position: u64,
    header: &RecordBatchHeader,
    check_crc: bool,
) -> Result<(), LogError> {
    let corrupt = |reason: &str| LogError::CorruptSegment {
        path: log_path.to_path_buf(),
        position,
        reason: reason.to_string(),
    };
    let data = file
        .read_at(position, header.size_bytes())
        .await
        .map_err(|e| LogError::io("read", log_path, e))?;
    if data.len() != header.size_bytes() {
        return Err(corrupt("last batch shorter after truncation"));
    }
    match RecordBatchHeader::parse(&data) {
        Ok(read) if read == *header => {}
        _ => return Err(corrupt("last batch changed after truncation")),
    }
    if check_crc && crate::protocol::record_batch::check_crc(&data, header).is_err() {
        return Err(corrupt("last batch CRC changed after truncation"));
    }
    Ok(())
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
        (Some(last), Some(next)) if last.offset >= next => Err(IndexError::BeyondNextSegment {
            offset: last.offset,
            next_base_offset: next,
        }),
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
    /// Position where the scan started (0 for a full scan).
    start_position: u64,
    /// Length of the valid prefix of the file in bytes.
    valid_bytes: u64,
    /// Position and header of the last batch the scan kept, if it kept one.
    last_batch: Option<(u64, RecordBatchHeader)>,
    /// Why the scan stopped before the end of the file.
    stop: Option<ScanStop>,
}

/// Why a scan stopped before the end of the file: the file's tail from there is torn, corrupt
/// or not a continuation of the segment, and is truncated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum ScanStop {
    /// The bytes do not frame a batch (or its CRC-32C does not match).
    #[error(transparent)]
    Batch(BatchError),
    /// The last batch needs more bytes than the file has.
    #[error("incomplete batch: need {needed} bytes, file has {available}")]
    Incomplete { needed: usize, available: u64 },
    /// The read returned fewer bytes than the file size promised.
    #[error("short read")]
    ShortRead,
    /// A magic other than 2.
    #[error("magic {magic}")]
    Magic { magic: i8 },
    /// A negative `last_offset_delta`, or a `record_count` that disagrees with it.
    #[error("last_offset_delta {last_offset_delta} with record_count {record_count}")]
    RecordCount {
        last_offset_delta: i32,
        record_count: i32,
    },
    /// A base offset that is not the expected next offset.
    #[error("base offset {found} where {expected} was expected")]
    BaseOffset { found: i64, expected: i64 },
    /// The batch would end past `i32::MAX` bytes (index positions are `i32`).
    #[error("segment larger than i32::MAX bytes")]
    SegmentTooLarge,
    /// The batch's last offset is more than `i32::MAX` past the segment base (relative
    /// offsets are `i32`).
    #[error("offset {offset} too far from base {base_offset}")]
    RelativeOffset { offset: i64, base_offset: i64 },
    /// A loaded time index names a later offset than a batch that beats its timestamp.
    #[error("time index names offset {offset} past a larger timestamp")]
    TimeIndexAhead { offset: i64 },
    /// No room for another offset-index entry (`segment.index.bytes`).
    #[error("offset index full (segment.index.bytes)")]
    OffsetIndexFull,
}

/// Bytes read per I/O by a recovery scan (index rebuild after an unclean shutdown): fewer,
/// larger reads than [`SCAN_CHUNK_BYTES`] (128 KiB). Rebuilding a 0.9 GiB active segment took
/// 0.92 CPU-s instead of 1.33 (3.3 s instead of 3.6 s, results/2026-12-02-startup). Memory:
/// one buffer per partition being opened.
const RECOVERY_SCAN_CHUNK_BYTES: usize = 1 << 20;
const _: () = assert!(RECOVERY_SCAN_CHUNK_BYTES >= SCAN_CHUNK_BYTES);

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
    gaps_allowed: bool,
) -> Result<ScanResult, LogError> {
    let start_position = state.size_bytes;
    let mut position = start_position;
    let mut last_batch = None;
    let index_lengths = (state.offset_index.len(), state.time_index.len());
    let mut want = RECOVERY_SCAN_CHUNK_BYTES;
    let stop = loop {
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
            let at = position + local as u64;
            let base_offset = base_offset_of(&state);
            if let Some(problem) = batch_problem(&header, &state, base_offset, at, gaps_allowed) {
                stop = Some(problem);
                break;
            }
            if state.offset_index.is_full() {
                stop = Some(ScanStop::OffsetIndexFull);
                break;
            }
            if gaps_allowed {
                record_batch_after_gap(&mut state, &header, at, config.index_interval_bytes);
            } else {
                record_batch(&mut state, &header, at, config.index_interval_bytes);
            }
            state.size_bytes = at + header.size_bytes() as u64;
            last_batch = Some((at, header));
        }
        if stop.is_some() {
            break stop;
        }
        let consumed = state.size_bytes - position;
        want = RECOVERY_SCAN_CHUNK_BYTES;
        match iter.error() {
            None if consumed as usize == data.len() => position = state.size_bytes,
            Some(BatchError::Truncated { needed, available }) => {
                let at = state.size_bytes;
                let fits_in_file = at + *needed as u64 <= file_size;
                if !fits_in_file || (consumed == 0 && *needed <= *available) || data.len() < length
                {
                    break Some(ScanStop::Incomplete {
                        needed: *needed,
                        available: file_size - at,
                    });
                }
                position = at;
                want = want.max(*needed);
            }
            Some(error) => break Some(ScanStop::Batch(error.clone())),
            None => break Some(ScanStop::ShortRead),
        }
    };
    assert!(
        state.size_bytes <= file_size,
        "invariant: the valid prefix lies inside the file"
    );
    assert!(
        state.size_bytes >= start_position,
        "invariant: a scan never shortens what it started from"
    );
    state.indexes_dirty |= index_lengths != (state.offset_index.len(), state.time_index.len());
    Ok(ScanResult {
        valid_bytes: state.size_bytes,
        start_position,
        last_batch,
        state,
        stop,
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
    gaps_allowed: bool,
) -> Option<ScanStop> {
    let expected = state.next_offset;
    if header.magic != MAGIC_V2 {
        return Some(ScanStop::Magic {
            magic: header.magic,
        });
    }
    // A compacted batch keeps its offset range with fewer records (even none).
    let records_fit = if gaps_allowed {
        header.record_count >= 0
            && header.record_count as i64 <= header.last_offset_delta as i64 + 1
    } else {
        header.record_count as i64 == header.last_offset_delta as i64 + 1
    };
    if header.last_offset_delta < 0 || !records_fit {
        return Some(ScanStop::RecordCount {
            last_offset_delta: header.last_offset_delta,
            record_count: header.record_count,
        });
    }
    let offset_ok = if gaps_allowed {
        header.base_offset >= expected
    } else {
        header.base_offset == expected
    };
    if !offset_ok {
        return Some(ScanStop::BaseOffset {
            found: header.base_offset,
            expected,
        });
    }
    if position + header.size_bytes() as u64 > i32::MAX as u64 {
        return Some(ScanStop::SegmentTooLarge);
    }
    if header.last_offset() - base_offset > i32::MAX as i64 {
        return Some(ScanStop::RelativeOffset {
            offset: header.last_offset(),
            base_offset,
        });
    }
    // A time index loaded from disk must not name a later offset than a batch that beats its
    // largest timestamp (only possible when the file is wrong; the caller then rebuilds).
    let time_entry_offset = state.time_index.last_entry().map_or(-1, |e| e.offset);
    if header.max_timestamp > state.max_timestamp && header.last_offset() < time_entry_offset {
        return Some(ScanStop::TimeIndexAhead {
            offset: time_entry_offset,
        });
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
    assert!(
        size_bytes - start < file.alignment(),
        "invariant: the tail is shorter than one page"
    );
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
        for suffix in [
            LOG_FILE_SUFFIX,
            INDEX_FILE_SUFFIX,
            TIME_INDEX_FILE_SUFFIX,
            super::TXN_INDEX_FILE_SUFFIX,
        ] {
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
