//! Kafka's aborted-transaction index: one `<base_offset:020>.txnindex` beside each segment,
//! holding an entry per transaction whose ABORT marker lies in that segment (Kafka's
//! `TransactionIndex` / `AbortedTxn`). Each entry is 34 bytes, big-endian: `int16 version = 0,
//! int64 producer_id, int64 first_offset, int64 last_offset` (the marker's offset), `int64
//! last_stable_offset` (the LSO once the marker landed).
//!
//! The [`Log`](super::Log) keeps every entry of the partition in memory, sorted by
//! `last_offset`, and writes each new one to the active segment's file (appended, fdatasynced)
//! before the marker is acknowledged. Files are deleted with their segment (retention,
//! DeleteRecords, compaction swaps, which merge a group's entries into the cleaned segment's
//! file) and rewritten by recovery from the log.

use std::io::Write;
use std::path::Path;

use super::LogError;

/// File name extension of the aborted-transaction index (Kafka: `LogFileUtils.TXN_INDEX_FILE_SUFFIX`).
pub const TXN_INDEX_FILE_SUFFIX: &str = "txnindex";
/// Size of one entry in bytes (Kafka's `AbortedTxn.TOTAL_SIZE`).
pub const ABORTED_TXN_BYTES: usize = 34;
/// The entry version Kafka writes (`AbortedTxn.CURRENT_VERSION`).
pub const ABORTED_TXN_VERSION: i16 = 0;
const _: () = assert!(ABORTED_TXN_BYTES == 2 + 8 + 8 + 8 + 8);

/// One aborted transaction of one producer on this partition (Kafka's `AbortedTxn`); what Fetch
/// answers in `aborted_transactions` (producer id, first offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch on this partition.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset once the marker landed (Kafka's
    /// `ProducerStateManager.lastStableOffset(completedTxn)`).
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// Kafka's 34-byte entry.
    pub fn encode(&self) -> [u8; ABORTED_TXN_BYTES] {
        let mut out = [0u8; ABORTED_TXN_BYTES];
        out[0..2].copy_from_slice(&ABORTED_TXN_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    /// Parses one entry; `None` for a short slice or an unknown version.
    pub fn decode(bytes: &[u8]) -> Option<AbortedTxn> {
        if bytes.len() < ABORTED_TXN_BYTES {
            return None;
        }
        let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8"));
        if i16::from_be_bytes([bytes[0], bytes[1]]) != ABORTED_TXN_VERSION {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// Entries of one `.txnindex` file; a partial or unknown-version tail ends it (Kafka's
/// `TransactionIndex.sanityCheck` refuses such a file and its segment is then recovered; here
/// recovery of the active segment rewrites it, a sealed segment keeps the whole entries).
pub(crate) fn read_txn_index(path: &Path) -> Result<Vec<AbortedTxn>, LogError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io("read", path, e)),
    };
    let mut entries = Vec::with_capacity(bytes.len() / ABORTED_TXN_BYTES);
    for chunk in bytes.chunks(ABORTED_TXN_BYTES) {
        match AbortedTxn::decode(chunk) {
            Some(entry) => entries.push(entry),
            None => {
                tracing::warn!(path = %path.display(), "ignoring a partial or unknown entry at the end of a transaction index");
                break;
            }
        }
    }
    Ok(entries)
}

/// Appends `entry` to the file (created if missing) and fdatasyncs it.
pub(crate) fn append_txn_index(path: &Path, entry: &AbortedTxn) -> Result<(), LogError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| LogError::io("open", path, e))?;
    file.write_all(&entry.encode())
        .map_err(|e| LogError::io("write", path, e))?;
    file.sync_data()
        .map_err(|e| LogError::io("fdatasync", path, e))
}

/// Replaces the file with exactly `entries` (removed when empty): a temporary file, fsynced,
/// renamed over it.
pub(crate) fn write_txn_index(path: &Path, entries: &[AbortedTxn]) -> Result<(), LogError> {
    if entries.is_empty() {
        return match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::io("remove", path, e)),
        };
    }
    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    let temporary = std::path::PathBuf::from(name);
    let mut file =
        std::fs::File::create(&temporary).map_err(|e| LogError::io("create", &temporary, e))?;
    file.write_all(&bytes)
        .map_err(|e| LogError::io("write", &temporary, e))?;
    file.sync_data()
        .map_err(|e| LogError::io("fdatasync", &temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|source| LogError::Rename {
        from: temporary.clone(),
        to: path.to_path_buf(),
        source,
    })
}

/// Kafka's `collectAbortedTxns` over the partition's entries (sorted by `last_offset`): every
/// transaction with `last_offset >= fetch_offset` and `first_offset < upper_bound_offset`,
/// stopping after the first entry whose `last_stable_offset >= upper_bound_offset` (no later
/// transaction can then start below the bound).
pub(crate) fn collect_aborted(
    entries: &[AbortedTxn],
    fetch_offset: i64,
    upper_bound_offset: i64,
) -> Vec<AbortedTxn> {
    let start = entries.partition_point(|e| e.last_offset < fetch_offset);
    let mut out = Vec::new();
    for entry in &entries[start..] {
        if entry.first_offset < upper_bound_offset {
            out.push(*entry);
        }
        if entry.last_stable_offset >= upper_bound_offset {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entry_has_kafkas_34_byte_layout() {
        let entry = txn(0x0102030405060708, 10, 20, 21);
        let bytes = entry.encode();
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[10..18], &10i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &20i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &21i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&bytes), Some(entry));
        assert_eq!(AbortedTxn::decode(&bytes[..33]), None);
        let mut v1 = bytes;
        v1[1] = 1;
        assert_eq!(AbortedTxn::decode(&v1), None);
    }

    #[test]
    fn files_round_trip_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        assert_eq!(read_txn_index(&path).unwrap(), vec![]);
        append_txn_index(&path, &txn(1, 0, 5, 6)).unwrap();
        append_txn_index(&path, &txn(2, 3, 9, 10)).unwrap();
        assert_eq!(
            read_txn_index(&path).unwrap(),
            vec![txn(1, 0, 5, 6), txn(2, 3, 9, 10)]
        );
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 1]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_txn_index(&path).unwrap().len(), 2);
        write_txn_index(&path, &[txn(3, 1, 2, 3)]).unwrap();
        assert_eq!(read_txn_index(&path).unwrap(), vec![txn(3, 1, 2, 3)]);
        write_txn_index(&path, &[]).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn collect_follows_kafkas_rule() {
        // pid 1 aborted [0, 5], pid 2 aborted [3, 9] (open while 1 ended: LSO 3), pid 3 [20, 25].
        let entries = vec![txn(1, 0, 5, 3), txn(2, 3, 9, 10), txn(3, 20, 25, 26)];
        assert_eq!(collect_aborted(&entries, 0, 4), entries[..2].to_vec());
        assert_eq!(collect_aborted(&entries, 6, 12), entries[1..2].to_vec());
        assert_eq!(collect_aborted(&entries, 10, 19), vec![]);
        assert_eq!(collect_aborted(&entries, 10, 30), entries[2..].to_vec());
        assert_eq!(collect_aborted(&entries, 0, 1), entries[..1].to_vec());
    }
}
