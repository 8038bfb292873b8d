//! Kafka's checkpoint files: the `leader-epoch-checkpoint` of a partition (Kafka's
//! `LeaderEpochFileCache` / `LeaderEpochCheckpointFile`) and the log dir's
//! `log-start-offset-checkpoint` (`LogManager`'s `OffsetCheckpointFile`).
//!
//! Both use Kafka's `CheckpointFile` text format: a line with the version (0), a line with the
//! entry count, then one entry per line, fields separated by one space. Files are small and
//! written rarely (a new leader epoch, a DeleteRecords), so they are written with std::fs:
//! temporary file, fsync, rename, fsync of the directory, as Kafka's `CheckpointFile.write`.
//!
//! Invariants (asserted): leader epoch entries are strictly increasing in epoch and
//! non-decreasing in start offset.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::LogError;

/// File name of a partition's leader epoch cache (Kafka's `LeaderEpochCheckpointFile`).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// File name of the log dir's log start offsets (Kafka's `LogManager.LogStartOffsetCheckpointFile`).
pub const LOG_START_OFFSET_CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";
/// The only `CheckpointFile` version Kafka writes.
const CHECKPOINT_VERSION: &str = "0";

/// Kafka's `UNDEFINED_EPOCH` / `UNDEFINED_EPOCH_OFFSET` (OffsetForLeaderEpoch answers).
pub const UNDEFINED_EPOCH: i32 = -1;
/// See [`UNDEFINED_EPOCH`].
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One leader epoch and the first offset written in it (Kafka's `EpochEntry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// A partition's leader epochs with their start offsets, kept in
/// `<partition dir>/leader-epoch-checkpoint` (Kafka's `LeaderEpochFileCache`).
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    /// Sorted by epoch (and by start offset).
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Reads the checkpoint in `dir` (none: empty). An unreadable file is a storage error; lines
    /// that do not parse are dropped with a warning, as the entries are only an optimisation of
    /// the answer to OffsetForLeaderEpoch, never of the data.
    pub fn load(dir: &Path) -> Result<LeaderEpochCache, LogError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let mut entries: Vec<EpochEntry> = read_checkpoint(&path)?
            .into_iter()
            .filter_map(|fields| match fields.as_slice() {
                [epoch, offset] => Some(EpochEntry {
                    epoch: epoch.parse().ok()?,
                    start_offset: offset.parse().ok()?,
                }),
                _ => None,
            })
            .collect();
        entries.sort_by_key(|e| e.epoch);
        entries.dedup_by_key(|e| e.epoch);
        let mut cache = LeaderEpochCache { path, entries };
        // A file that breaks the order is not ours to trust: keep its ordered prefix.
        let ordered = cache
            .entries
            .windows(2)
            .take_while(|w| w[0].start_offset <= w[1].start_offset)
            .count();
        if ordered + 1 < cache.entries.len() {
            tracing::warn!(path = %cache.path.display(), "leader-epoch-checkpoint out of order; keeping its ordered prefix");
            cache.entries.truncate(ordered + 1);
        }
        Ok(cache)
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch with an entry.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `LeaderEpochFileCache.assign`):
    /// ignored unless `epoch` is newer than the latest; entries starting at or after
    /// `start_offset` are replaced (they saw no data). Writes the file when it changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<(), LogError> {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return Ok(());
        }
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.assert_ordered();
        self.write()
    }

    /// Drops entries starting at or after `end_offset` (Kafka's `truncateFromEnd`): recovery
    /// truncated the log below them.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), LogError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.write()?;
        }
        Ok(())
    }

    /// Drops entries wholly below `start_offset` and moves the last of them to start there
    /// (Kafka's `truncateFromStart`, on DeleteRecords and retention).
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), LogError> {
        let removed = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if removed == 0 {
            return Ok(());
        }
        let last = self.entries[removed - 1];
        if removed == 1 && last.start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..removed);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: last.epoch,
                start_offset,
            },
        );
        self.assert_ordered();
        self.write()
    }

    /// `(leader_epoch, end_offset)` for OffsetForLeaderEpoch (Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`): the latest epoch ends at `log_end_offset`; an older
    /// epoch ends where the next higher epoch starts, answered with the largest epoch at or below
    /// the requested one (the requested one itself when it is below the first entry); an epoch
    /// above the latest, or -1, is `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested_epoch == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested_epoch) else {
            return undefined;
        };
        match self
            .entries
            .iter()
            .rev()
            .find(|e| e.epoch <= requested_epoch)
        {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested_epoch, higher.start_offset),
        }
    }

    /// The epoch `offset` was written in (Kafka's `epochForOffset`), if an entry covers it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    fn assert_ordered(&self) {
        for pair in self.entries.windows(2) {
            assert!(
                pair[0].epoch < pair[1].epoch,
                "invariant: leader epochs strictly increase"
            );
            assert!(
                pair[0].start_offset <= pair[1].start_offset,
                "invariant: leader epoch start offsets never decrease"
            );
        }
    }

    fn write(&self) -> Result<(), LogError> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        write_checkpoint(&self.path, &lines)
    }
}

/// The log start offsets of every log dir's partitions, as in Kafka's
/// `log-start-offset-checkpoint` (`<topic> <partition> <offset>` lines). One process-wide table
/// behind a mutex: shards touch it only on DeleteRecords, partition open and deletion, never
/// on the data path.
static LOG_START_OFFSETS: Mutex<BTreeMap<PathBuf, LogStartOffsets>> = Mutex::new(BTreeMap::new());

/// One log dir's checkpointed log start offsets by (topic, partition).
type LogStartOffsets = BTreeMap<(String, i32), i64>;

/// The log start offset checkpointed for the partition in `partition_dir`, if any.
pub fn checkpointed_log_start_offset(partition_dir: &Path) -> Result<Option<i64>, LogError> {
    let Some((log_dir, key)) = partition_key(partition_dir) else {
        return Ok(None);
    };
    let mut table = LOG_START_OFFSETS.lock().expect("checkpoint table");
    let offsets = load_log_start_offsets(&mut table, &log_dir)?;
    Ok(offsets.get(&key).copied())
}

/// Records (`Some`) or forgets (`None`, the partition was deleted) the partition's log start
/// offset and rewrites the log dir's checkpoint.
pub fn checkpoint_log_start_offset(
    partition_dir: &Path,
    log_start_offset: Option<i64>,
) -> Result<(), LogError> {
    let Some((log_dir, key)) = partition_key(partition_dir) else {
        return Ok(());
    };
    let mut table = LOG_START_OFFSETS.lock().expect("checkpoint table");
    let offsets = load_log_start_offsets(&mut table, &log_dir)?;
    let changed = match log_start_offset {
        Some(offset) => offsets.insert(key, offset) != Some(offset),
        None => offsets.remove(&key).is_some(),
    };
    if !changed {
        return Ok(());
    }
    let lines: Vec<String> = offsets
        .iter()
        .map(|((topic, partition), offset)| format!("{topic} {partition} {offset}"))
        .collect();
    write_checkpoint(&log_dir.join(LOG_START_OFFSET_CHECKPOINT_FILE), &lines)
}

fn load_log_start_offsets<'a>(
    table: &'a mut BTreeMap<PathBuf, LogStartOffsets>,
    log_dir: &Path,
) -> Result<&'a mut LogStartOffsets, LogError> {
    if !table.contains_key(log_dir) {
        let path = log_dir.join(LOG_START_OFFSET_CHECKPOINT_FILE);
        let offsets = read_checkpoint(&path)?
            .into_iter()
            .filter_map(|fields| match fields.as_slice() {
                [topic, partition, offset] => Some((
                    (topic.clone(), partition.parse().ok()?),
                    offset.parse().ok()?,
                )),
                _ => None,
            })
            .collect();
        table.insert(log_dir.to_path_buf(), offsets);
    }
    Ok(table.get_mut(log_dir).expect("inserted above"))
}

/// `(log dir, (topic, partition))` of a `<log dir>/<topic>-<partition>` directory.
fn partition_key(partition_dir: &Path) -> Option<(PathBuf, (String, i32))> {
    let name = partition_dir.file_name()?.to_str()?;
    let (topic, partition) = name.rsplit_once('-')?;
    let partition = partition.parse().ok()?;
    Some((
        partition_dir.parent()?.to_path_buf(),
        (topic.to_string(), partition),
    ))
}

/// The entries of a checkpoint file, each split on spaces; empty when there is no file or its
/// header is not Kafka's (a warning, as the content is then unknown). Errors: only a failed read
/// (a [`LogError`] naming the file); damaged content is never an error.
fn read_checkpoint(path: &Path) -> Result<Vec<Vec<String>>, LogError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io("read", path, e)),
    };
    // Bytes that are not UTF-8 (a flipped bit) spoil their line, not the file: such lines then
    // fail to parse and are dropped like any malformed line.
    let text = String::from_utf8(bytes).unwrap_or_else(|e| {
        tracing::warn!(path = %path.display(), "checkpoint file is not valid UTF-8; dropping the lines that do not parse");
        String::from_utf8_lossy(e.as_bytes()).into_owned()
    });
    let mut lines = text.lines();
    let version = lines.next();
    let count = lines.next().and_then(|c| c.trim().parse::<usize>().ok());
    let (Some(CHECKPOINT_VERSION), Some(count)) = (version.map(str::trim), count) else {
        tracing::warn!(path = %path.display(), "ignoring checkpoint file with an unknown header");
        return Ok(Vec::new());
    };
    Ok(lines
        .take(count)
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect())
}

/// Writes `lines` in Kafka's checkpoint format, atomically (temp file, fsync, rename, dir fsync).
fn write_checkpoint(path: &Path, lines: &[String]) -> Result<(), LogError> {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", lines.len());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| LogError::io("create", &tmp, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| LogError::io("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| LogError::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| LogError::io("rename", path, e))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| LogError::io("fsync_dir", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(dir.path()).unwrap();
        for &(epoch, offset) in entries {
            cache.assign(epoch, offset).unwrap();
        }
        (dir, cache)
    }

    #[test]
    fn a_checkpoint_with_bytes_that_are_not_utf8_keeps_its_good_lines() {
        // A flipped byte (issue 14, torn and corrupt files) once made start-up fail with
        // "stream did not contain valid UTF-8".
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
        std::fs::write(&path, b"0\n2\n0 0\n2\xff 7\n").unwrap();
        let cache = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(
            cache.entries(),
            &[EpochEntry {
                epoch: 0,
                start_offset: 0
            }]
        );
        std::fs::write(&path, b"\xfe\n1\n0 0\n").unwrap();
        assert!(LeaderEpochCache::load(dir.path())
            .unwrap()
            .entries()
            .is_empty());
    }

    #[test]
    fn end_offsets_follow_kafka() {
        // Kafka 4.1 with entries 0@0, 4@3 and log end 3 answered exactly these.
        let (_dir, c) = cache(&[(0, 0), (2, 3), (4, 3)]);
        assert_eq!(
            c.entries().len(),
            2,
            "2@3 replaced by 4@3 (no data in epoch 2)"
        );
        let check = |requested, expected| assert_eq!(c.end_offset_for(requested, 3), expected);
        check(0, (0, 3));
        check(1, (0, 3));
        check(4, (4, 3));
        check(5, (-1, -1));
        check(-1, (-1, -1));
        let (_dir, c) = cache(&[(4, 3)]);
        assert_eq!(
            c.end_offset_for(0, 10),
            (0, 3),
            "below the first: the requested epoch"
        );
    }

    #[test]
    fn truncation_and_reload() {
        let (dir, mut c) = cache(&[(0, 0), (2, 5), (4, 9)]);
        c.truncate_from_start(6).unwrap();
        assert_eq!(
            c.entries(),
            [
                EpochEntry {
                    epoch: 2,
                    start_offset: 6
                },
                EpochEntry {
                    epoch: 4,
                    start_offset: 9
                }
            ]
        );
        c.truncate_from_end(9).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n1\n2 6\n");
        let reloaded = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(reloaded.entries(), c.entries());
        assert_eq!(reloaded.epoch_for_offset(7), Some(2));
        assert_eq!(reloaded.epoch_for_offset(5), None);
    }

    #[test]
    fn log_start_offsets_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let partition = dir.path().join("my-topic-3");
        assert_eq!(checkpointed_log_start_offset(&partition).unwrap(), None);
        checkpoint_log_start_offset(&partition, Some(42)).unwrap();
        let text =
            std::fs::read_to_string(dir.path().join(LOG_START_OFFSET_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n1\nmy-topic 3 42\n");
        assert_eq!(checkpointed_log_start_offset(&partition).unwrap(), Some(42));
        checkpoint_log_start_offset(&partition, None).unwrap();
        assert_eq!(checkpointed_log_start_offset(&partition).unwrap(), None);
    }
}
