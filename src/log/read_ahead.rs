//! Read-ahead for sequential fetches of a partition's segment files (issue 13).
//!
//! Segments are read with O_DIRECT, so a consumer catching up from disk waits for every read:
//! one Fetch reads `partition_max_bytes` of a partition, answers, and only then does the next
//! Fetch ask for what follows, so the disk idles while the response travels and its queue never
//! holds more than one read per partition. After a log read that returned batches,
//! [`Log::read`](super::Log::read) starts reading the same number of bytes from where that read
//! ended, in a task of its own; the next read of that log that starts at exactly that offset in
//! that segment takes the bytes (awaiting the task if it is still reading) instead of reading
//! again. Kafka gets the same effect from the kernel's page-cache read-ahead behind `sendfile`.
//!
//! One store per shard (thread), oldest first, bounded by `ringtail.fetch.read.ahead.bytes`
//! ([`set_shard_budget`]): a new read-ahead evicts the oldest ones (a consumer that stopped, a
//! partition no one reads any more) until it fits; one larger than the whole budget is not
//! started. At most [`MAX_PER_LOG`] per log, so a few consumers of one partition at different
//! offsets each keep theirs. Bytes are counted from the start of the read until the entry is
//! taken or evicted (dropping its task cancels the read).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use super::segment::LogSegment;
use super::LogError;

/// The default of `ringtail.fetch.read.ahead.bytes`: bytes each shard may hold read ahead.
pub const DEFAULT_SHARD_BUDGET_BYTES: usize = 64 << 20;

/// A read-ahead is started only after reads that returned at least this many bytes: smaller
/// reads are consumers near the tail, which the tail cache serves.
pub const MIN_READ_AHEAD_BYTES: usize = 64 * 1024;

/// Read-aheads kept per log (one per sequential reader at a distinct offset).
pub const MAX_PER_LOG: usize = 4;

/// One read-ahead: `length` bytes of `segment` from `position`, where the batch holding (or
/// following) `next_offset` starts.
struct Entry {
    log_id: u64,
    segment: Rc<LogSegment>,
    next_offset: i64,
    position: u64,
    length: usize,
    task: glommio::Task<Result<Bytes, LogError>>,
}

struct Store {
    budget: usize,
    held: usize,
    /// Reads answered by a read-ahead since start-up (`ringtail_shard_read_ahead_hits_total`).
    hits: u64,
    entries: VecDeque<Entry>,
    next_log_id: u64,
}

impl Store {
    fn remove(&mut self, index: usize) -> Option<Entry> {
        let entry = self.entries.remove(index)?;
        assert!(
            self.held >= entry.length,
            "invariant: read-ahead bytes counted once"
        );
        self.held -= entry.length;
        Some(entry)
    }
}

thread_local! {
    static STORE: RefCell<Store> = const {
        RefCell::new(Store {
            budget: DEFAULT_SHARD_BUDGET_BYTES,
            held: 0,
            hits: 0,
            entries: VecDeque::new(),
            next_log_id: 0,
        })
    };
}

/// Sets this shard's (thread's) read-ahead budget in bytes, evicting what passes it; 0
/// disables read-ahead.
pub fn set_shard_budget(bytes: usize) {
    STORE.with(|store| {
        let mut store = store.borrow_mut();
        store.budget = bytes;
        while store.held > store.budget {
            store.remove(0);
        }
    });
}

/// Bytes this shard's read-aheads hold or are reading now.
pub fn held_bytes() -> usize {
    STORE.with(|store| store.borrow().held)
}

/// Reads this shard answered from a read-ahead since start-up.
pub fn hits() -> u64 {
    STORE.with(|store| store.borrow().hits)
}

/// Counts a read answered from a read-ahead.
pub(super) fn record_hit() {
    STORE.with(|store| store.borrow_mut().hits += 1);
}

/// A shard-unique id for a log's read-aheads.
pub(super) fn new_log_id() -> u64 {
    STORE.with(|store| {
        let mut store = store.borrow_mut();
        store.next_log_id += 1;
        store.next_log_id
    })
}

/// Drops every read-ahead of `log_id` (the log closed).
pub(super) fn forget_log(log_id: u64) {
    STORE.with(|store| {
        let mut store = store.borrow_mut();
        while let Some(index) = store.entries.iter().position(|e| e.log_id == log_id) {
            store.remove(index);
        }
    });
}

/// The read-ahead of `log_id` in `segment` that starts at `offset`, removed from the store:
/// its file position and its read (which yields the bytes from there).
pub(super) fn take(
    log_id: u64,
    segment: &Rc<LogSegment>,
    offset: i64,
) -> Option<(u64, glommio::Task<Result<Bytes, LogError>>)> {
    STORE.with(|store| {
        let mut store = store.borrow_mut();
        let index = store.entries.iter().position(|e| {
            e.log_id == log_id && e.next_offset == offset && Rc::ptr_eq(&e.segment, segment)
        })?;
        store.remove(index).map(|e| (e.position, e.task))
    })
}

/// Starts reading `length` bytes of `segment` at `position` (clamped to its size now) for the
/// read of `log_id` that will start at `next_offset`, evicting the oldest read-aheads (and
/// this log's beyond [`MAX_PER_LOG`]) to fit. Nothing when there is nothing to read there or
/// the read is larger than the whole budget.
pub(super) fn start(
    log_id: u64,
    segment: &Rc<LogSegment>,
    next_offset: i64,
    position: u64,
    length: usize,
) {
    let length = segment
        .size_bytes()
        .saturating_sub(position)
        .min(length as u64) as usize;
    if length < crate::protocol::record_batch::RECORD_BATCH_HEADER_BYTES {
        return;
    }
    STORE.with(|store| {
        let mut store = store.borrow_mut();
        if length > store.budget {
            return;
        }
        if store.entries.iter().filter(|e| e.log_id == log_id).count() >= MAX_PER_LOG {
            if let Some(index) = store.entries.iter().position(|e| e.log_id == log_id) {
                store.remove(index);
            }
        }
        while store.held + length > store.budget {
            store.remove(0);
        }
        let reader = segment.clone();
        let task = glommio::spawn_local(async move {
            let data = reader.read_at(position, length).await?;
            Ok(Bytes::copy_from_slice(&data))
        });
        store.held += length;
        store.entries.push_back(Entry {
            log_id,
            segment: segment.clone(),
            next_offset,
            position,
            length,
            task,
        });
    });
}

/// Whole batches of `bytes` (which start at a batch boundary) from the first one ending at or
/// after `offset`, as [`LogSegment::read`] returns them: at most `max_bytes` except that the
/// first is whole (KIP-74), none with a next offset past `max_offset`; with their start
/// within `bytes`. `None` when the bytes do not hold the whole first batch, or it lies past
/// `max_offset` (the caller then reads the segment).
pub(super) fn batches_from(
    bytes: &Bytes,
    offset: i64,
    max_bytes: usize,
    max_offset: i64,
) -> Option<(usize, Bytes)> {
    let mut start = None;
    let mut end = 0usize;
    for (position, header) in crate::protocol::record_batch::BatchIter::new(bytes) {
        if header.last_offset() < offset {
            continue;
        }
        let first = *start.get_or_insert(position);
        if header.next_offset() > max_offset
            || (position > first && position + header.size_bytes() - first > max_bytes)
        {
            break;
        }
        end = position + header.size_bytes();
    }
    let start = start?;
    (end > start).then(|| (start, bytes.slice(start..end)))
}
