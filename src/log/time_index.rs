//! The sparse time index of one segment (`<base_offset:020>.timeindex`), Kafka's `TimeIndex`.
//!
//! Each 12-byte entry is the largest batch `max_timestamp` seen so far in the segment (`i64` BE,
//! milliseconds since the Unix epoch) and the relative offset (`i32` BE) of the last record of
//! the batch that carried it. Entries are added next to offset-index entries and once more when
//! the segment is rolled or closed, only when the timestamp grew (Kafka's `TimeIndex.maybeAppend`).
//!
//! Invariants: timestamps strictly increasing; relative offsets non-decreasing and non-negative.

use super::IndexError;

/// Size of one entry on disk in bytes (Kafka: `TimeIndex.ENTRY_SIZE`).
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;
// An entry is an `i64` timestamp and an `i32` relative offset.
const _: () =
    assert!(TIME_INDEX_ENTRY_BYTES == std::mem::size_of::<i64>() + std::mem::size_of::<i32>());

/// One entry, as absolute values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Absolute offset (last offset of the batch holding `timestamp`).
    pub offset: i64,
}

/// In-memory sparse time index of one segment.
#[derive(Clone, Debug)]
pub struct TimeIndex {
    base_offset: i64,
    entries: Vec<(i64, u32)>,
    max_entries: usize,
}

impl TimeIndex {
    /// An empty index holding at most `max_index_bytes / 12` entries (`segment.index.bytes`).
    pub fn new(base_offset: i64, max_index_bytes: u64) -> TimeIndex {
        let max_entries = (max_index_bytes / TIME_INDEX_ENTRY_BYTES as u64).max(1) as usize;
        TimeIndex {
            base_offset,
            entries: Vec::new(),
            max_entries,
        }
    }

    /// Parses a `.timeindex` file. `max_relative_offset` bounds the offsets (the segment's last
    /// offset minus its base, when known). Errors name the broken rule; the caller rebuilds.
    pub fn from_bytes(
        base_offset: i64,
        max_index_bytes: u64,
        bytes: &[u8],
        max_relative_offset: Option<i64>,
    ) -> Result<TimeIndex, IndexError> {
        if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
            return Err(IndexError::PartialEntry {
                size_bytes: bytes.len(),
                entry_bytes: TIME_INDEX_ENTRY_BYTES,
            });
        }
        let mut index = TimeIndex::new(base_offset, max_index_bytes);
        index.max_entries = index
            .max_entries
            .max(bytes.len() / TIME_INDEX_ENTRY_BYTES + 1);
        for (i, entry) in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES).enumerate() {
            let timestamp = i64::from_be_bytes(entry[0..8].try_into().expect("8 bytes"));
            let relative_offset = i32::from_be_bytes(entry[8..12].try_into().expect("4 bytes"));
            if relative_offset < 0
                || max_relative_offset.is_some_and(|m| relative_offset as i64 > m)
            {
                return Err(IndexError::TimeEntryOutOfRange {
                    entry: i,
                    relative_offset,
                    max_relative_offset,
                });
            }
            if let Some(&(last_timestamp, last_relative)) = index.entries.last() {
                if timestamp <= last_timestamp || (relative_offset as u32) < last_relative {
                    return Err(IndexError::TimeEntryNotIncreasing {
                        entry: i,
                        timestamp,
                        relative_offset,
                    });
                }
            }
            index.entries.push((timestamp, relative_offset as u32));
        }
        Ok(index)
    }

    /// The index as written to disk: 12 bytes per entry, big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * TIME_INDEX_ENTRY_BYTES);
        for &(timestamp, relative) in &self.entries {
            bytes.extend_from_slice(&timestamp.to_be_bytes());
            bytes.extend_from_slice(&(relative as i32).to_be_bytes());
        }
        bytes
    }

    /// [`Self::to_bytes`] of the entries for offsets below `end_offset` only (a recovery
    /// checkpoint of the active segment).
    pub fn to_bytes_below(&self, end_offset: i64) -> Vec<u8> {
        let relative_end = end_offset - self.base_offset;
        let kept = self
            .entries
            .partition_point(|&(_, relative)| (relative as i64) < relative_end);
        let mut bytes = self.to_bytes();
        bytes.truncate(kept * TIME_INDEX_ENTRY_BYTES);
        bytes
    }

    /// Adds `(timestamp, offset)` when `timestamp` is larger than the last entry's (Kafka's
    /// `maybeAppend`); `skip_full_check` lets the final entry at roll/close exceed the limit.
    ///
    /// Panics when `offset` or `timestamp` goes backwards, as Kafka's `maybeAppend` throws
    /// `InvalidOffsetException` / `IllegalStateException`: callers append the segment's running
    /// largest timestamp and its offset, which never decrease. Unlike Kafka, an append to a full
    /// index is skipped rather than refused (a multi-batch append may fill it mid-way; the
    /// segment rolls before the next append).
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64, skip_full_check: bool) {
        let relative = offset - self.base_offset;
        assert!(
            relative >= 0,
            "invariant: time index offsets are not below the segment base ({offset} < {})",
            self.base_offset
        );
        assert!(
            relative <= i32::MAX as i64,
            "invariant: time index relative offsets fit in i32"
        );
        if let Some(&(last_timestamp, last_relative)) = self.entries.last() {
            assert!(
                relative as u32 >= last_relative,
                "invariant: time index offsets never decrease ({relative} after {last_relative})"
            );
            assert!(
                timestamp >= last_timestamp,
                "invariant: time index timestamps never decrease ({timestamp} after {last_timestamp})"
            );
            if timestamp == last_timestamp {
                return;
            }
        }
        if !skip_full_check && self.is_full() {
            return;
        }
        self.entries.push((timestamp, relative as u32));
    }

    /// The entry with the largest timestamp strictly below `target_timestamp`, if any. Every
    /// record up to its offset has a timestamp below the target, so the first record with
    /// timestamp `>= target_timestamp` lies after it.
    pub fn lookup_below(&self, target_timestamp: i64) -> Option<TimestampOffset> {
        let count = self.entries.partition_point(|&(t, _)| t < target_timestamp);
        count.checked_sub(1).map(|i| self.entry(i))
    }

    /// The last entry: the segment's largest timestamp once the segment was rolled or closed.
    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.entries.len().checked_sub(1).map(|i| self.entry(i))
    }

    /// True when no more entries fit in `segment.index.bytes`.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry(&self, i: usize) -> TimestampOffset {
        let (timestamp, relative) = self.entries[i];
        TimestampOffset {
            timestamp,
            offset: self.base_offset + relative as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_only_growing_timestamps_and_looks_up_strictly_below() {
        let mut idx = TimeIndex::new(10, 1 << 20);
        idx.maybe_append(1000, 12, false);
        idx.maybe_append(1000, 15, false);
        idx.maybe_append(2000, 20, false);
        assert_eq!(idx.len(), 2);
        let check = |target: i64, expected: Option<(i64, i64)>| {
            let found = idx.lookup_below(target).map(|e| (e.timestamp, e.offset));
            assert_eq!(found, expected, "target {target}");
        };
        check(999, None);
        check(1000, None);
        check(1001, Some((1000, 12)));
        check(2000, Some((1000, 12)));
        check(5000, Some((2000, 20)));
        assert_eq!(idx.last_entry().map(|e| e.offset), Some(20));
    }

    /// Kafka's `TimeIndex.maybeAppend` refuses a smaller timestamp (`IllegalStateException`)
    /// or offset (`InvalidOffsetException`) than the last entry's; callers never pass one.
    #[test]
    #[should_panic(expected = "invariant: time index timestamps never decrease")]
    fn a_smaller_timestamp_is_a_bug() {
        let mut idx = TimeIndex::new(10, 1 << 20);
        idx.maybe_append(1000, 12, false);
        idx.maybe_append(900, 16, false);
    }

    #[test]
    #[should_panic(expected = "invariant: time index offsets never decrease")]
    fn a_smaller_offset_is_a_bug() {
        let mut idx = TimeIndex::new(10, 1 << 20);
        idx.maybe_append(1000, 12, false);
        idx.maybe_append(2000, 11, false);
    }

    #[test]
    fn round_trips_and_rejects_bad_files() {
        let mut idx = TimeIndex::new(10, 1 << 20);
        idx.maybe_append(1000, 12, false);
        idx.maybe_append(2000, 20, false);
        let bytes = idx.to_bytes();
        let loaded = TimeIndex::from_bytes(10, 1 << 20, &bytes, Some(10)).expect("valid");
        assert_eq!(loaded.last_entry(), idx.last_entry());
        assert!(TimeIndex::from_bytes(10, 1 << 20, &bytes[..20], None).is_err());
        assert!(TimeIndex::from_bytes(10, 1 << 20, &bytes, Some(5)).is_err());
        let mut swapped = bytes[12..].to_vec();
        swapped.extend_from_slice(&bytes[..12]);
        assert!(TimeIndex::from_bytes(10, 1 << 20, &swapped, None).is_err());
    }
}
