//! The sparse offset index of one segment (`<base_offset:020>.index`), Kafka's `OffsetIndex`.
//!
//! Each 8-byte entry maps a batch's last offset to the byte position of that batch in the
//! segment's `.log`: relative offset `i32` BE (`last_offset - base_offset`) then position `i32`
//! BE. One entry is added per `index.interval.bytes` appended (Kafka's `LogSegment.append`).
//!
//! Invariants: relative offsets are strictly increasing and non-negative; positions are strictly
//! increasing. The index lives in memory (a `Vec`) and is written as a whole when the segment is
//! rolled or closed; a file that breaks the invariants is rejected and rebuilt by `recovery`.

use super::IndexError;

/// Size of one entry on disk in bytes (Kafka: `OffsetIndex.ENTRY_SIZE`).
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
// An entry is a relative offset and a position, both `i32`.
const _: () = assert!(OFFSET_INDEX_ENTRY_BYTES == 2 * std::mem::size_of::<i32>());

/// One index entry, relative to the segment's base offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    /// `last_offset - base_offset` of the indexed batch.
    pub relative_offset: u32,
    /// Byte position of the indexed batch in the `.log` file.
    pub position: u32,
}

/// An absolute (offset, position) pair returned by [`OffsetIndex::lookup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset (a batch's last offset, or the segment base offset when no entry fits).
    pub offset: i64,
    /// Byte position in the `.log` file where a scan for the offset may start.
    pub position: u32,
}

/// In-memory sparse offset index of one segment.
#[derive(Clone, Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    entries: Vec<OffsetIndexEntry>,
    max_entries: usize,
}

impl OffsetIndex {
    /// An empty index holding at most `max_index_bytes / 8` entries (`segment.index.bytes`).
    pub fn new(base_offset: i64, max_index_bytes: u64) -> OffsetIndex {
        let max_entries = (max_index_bytes / OFFSET_INDEX_ENTRY_BYTES as u64).max(1) as usize;
        OffsetIndex {
            base_offset,
            entries: Vec::new(),
            max_entries,
        }
    }

    /// Parses a `.index` file. `log_size_bytes` is the size of the `.log` it indexes: every
    /// position must lie inside it. Errors name the broken rule; the caller rebuilds the index.
    pub fn from_bytes(
        base_offset: i64,
        max_index_bytes: u64,
        bytes: &[u8],
        log_size_bytes: u64,
    ) -> Result<OffsetIndex, IndexError> {
        if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
            return Err(IndexError::PartialEntry {
                size_bytes: bytes.len(),
                entry_bytes: OFFSET_INDEX_ENTRY_BYTES,
            });
        }
        let mut index = OffsetIndex::new(base_offset, max_index_bytes);
        index.max_entries = index
            .max_entries
            .max(bytes.len() / OFFSET_INDEX_ENTRY_BYTES);
        for (i, entry) in bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES).enumerate() {
            let relative_offset = i32::from_be_bytes(entry[0..4].try_into().expect("4 bytes"));
            let position = i32::from_be_bytes(entry[4..8].try_into().expect("4 bytes"));
            if relative_offset < 0 || position < 0 || position as u64 >= log_size_bytes {
                return Err(IndexError::OffsetEntryOutOfRange {
                    entry: i,
                    relative_offset,
                    position,
                    log_size_bytes,
                });
            }
            if let Some(last) = index.entries.last() {
                if relative_offset as u32 <= last.relative_offset
                    || position as u32 <= last.position
                {
                    return Err(IndexError::OffsetEntryNotIncreasing {
                        entry: i,
                        relative_offset,
                        position,
                    });
                }
            }
            index.entries.push(OffsetIndexEntry {
                relative_offset: relative_offset as u32,
                position: position as u32,
            });
        }
        Ok(index)
    }

    /// The index as written to disk: 8 bytes per entry, big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * OFFSET_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            bytes.extend_from_slice(&(entry.relative_offset as i32).to_be_bytes());
            bytes.extend_from_slice(&(entry.position as i32).to_be_bytes());
        }
        bytes
    }

    /// [`Self::to_bytes`] of the entries for batches ending below `end_offset` only (a recovery
    /// checkpoint of the active segment: the entries of durable batches).
    pub fn to_bytes_below(&self, end_offset: i64) -> Vec<u8> {
        let relative_end = end_offset - self.base_offset;
        let kept = self
            .entries
            .partition_point(|e| (e.relative_offset as i64) < relative_end);
        let mut bytes = self.to_bytes();
        bytes.truncate(kept * OFFSET_INDEX_ENTRY_BYTES);
        bytes
    }

    /// Adds an entry for the batch ending at `last_offset` stored at `position`.
    ///
    /// Panics when offsets or positions do not increase or the index is full (Kafka's
    /// `OffsetIndex.append` throws `InvalidOffsetException` / `IllegalArgumentException` for the
    /// same): appends are ordered by construction, so a violation is a bug, never bad input.
    pub fn append(&mut self, last_offset: i64, position: u32) {
        assert!(
            last_offset >= self.base_offset,
            "invariant: offset index entries are not below the segment base ({last_offset} < {})",
            self.base_offset
        );
        let relative = last_offset - self.base_offset;
        assert!(
            relative <= i32::MAX as i64,
            "invariant: offset index relative offsets fit in i32"
        );
        assert!(
            position <= i32::MAX as u32,
            "invariant: offset index positions fit in i32"
        );
        assert!(
            !self.is_full(),
            "invariant: no append to a full offset index (the segment rolls first)"
        );
        if let Some(last) = self.entries.last() {
            assert!(
                relative as u32 > last.relative_offset,
                "invariant: offset index offsets strictly increase ({relative} after {})",
                last.relative_offset
            );
            assert!(
                position > last.position,
                "invariant: offset index positions strictly increase ({position} after {})",
                last.position
            );
        }
        self.entries.push(OffsetIndexEntry {
            relative_offset: relative as u32,
            position,
        });
    }

    /// The entry with the largest offset `<= target_offset`, or (base offset, 0) when there is
    /// none (Kafka's `OffsetIndex.lookup`). A scan from its position finds `target_offset`.
    pub fn lookup(&self, target_offset: i64) -> OffsetPosition {
        let relative = target_offset - self.base_offset;
        let count = if relative < 0 {
            0
        } else {
            let relative = relative.min(u32::MAX as i64) as u32;
            self.entries
                .partition_point(|e| e.relative_offset <= relative)
        };
        match count.checked_sub(1).map(|i| self.entries[i]) {
            Some(entry) => OffsetPosition {
                offset: self.base_offset + entry.relative_offset as i64,
                position: entry.position,
            },
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// The segment base offset the entries are relative to.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// The last entry as absolute values, if any.
    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.entries.last().map(|e| OffsetPosition {
            offset: self.base_offset + e.relative_offset as i64,
            position: e.position,
        })
    }

    /// True when no more entries fit in `segment.index.bytes` (Kafka rolls the segment then).
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(i64, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::new(100, 1 << 20);
        for &(offset, position) in entries {
            index.append(offset, position);
        }
        index
    }

    #[test]
    fn lookup_finds_largest_entry_not_above_target() {
        let idx = index(&[(104, 0), (110, 4096), (120, 8200)]);
        let check = |target: i64, expected: (i64, u32)| {
            let found = idx.lookup(target);
            assert_eq!((found.offset, found.position), expected, "target {target}");
        };
        check(50, (100, 0));
        check(100, (100, 0));
        check(104, (104, 0));
        check(109, (104, 0));
        check(110, (110, 4096));
        check(119, (110, 4096));
        check(1_000_000, (120, 8200));
        assert_eq!(index(&[]).lookup(105).position, 0);
    }

    #[test]
    fn round_trips_and_rejects_bad_files() {
        let idx = index(&[(104, 0), (110, 4096)]);
        let bytes = idx.to_bytes();
        assert_eq!(bytes.len(), 16);
        let loaded = OffsetIndex::from_bytes(100, 1 << 20, &bytes, 5000).expect("valid");
        assert_eq!(loaded.last_entry(), idx.last_entry());
        assert!(OffsetIndex::from_bytes(100, 1 << 20, &bytes[..12], 5000).is_err());
        assert!(OffsetIndex::from_bytes(100, 1 << 20, &bytes, 4096).is_err());
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(OffsetIndex::from_bytes(100, 1 << 20, &swapped, 5000).is_err());
    }

    /// Kafka's `OffsetIndex.append` refuses an offset not larger than the last one
    /// (`InvalidOffsetException`); positions grow with offsets in a log.
    #[test]
    #[should_panic(expected = "invariant: offset index offsets strictly increase")]
    fn a_repeated_offset_is_a_bug() {
        index(&[(104, 0), (104, 4096)]);
    }

    #[test]
    #[should_panic(expected = "invariant: offset index positions strictly increase")]
    fn a_smaller_position_is_a_bug() {
        index(&[(104, 4096), (110, 0)]);
    }

    #[test]
    #[should_panic(expected = "invariant: no append to a full offset index")]
    fn an_append_to_a_full_index_is_a_bug() {
        let mut idx = OffsetIndex::new(0, 8);
        idx.append(1, 0);
        idx.append(2, 10);
    }

    #[test]
    fn full_at_segment_index_bytes() {
        let mut idx = OffsetIndex::new(0, 16);
        idx.append(1, 0);
        assert!(!idx.is_full());
        idx.append(2, 10);
        assert!(idx.is_full());
    }
}
