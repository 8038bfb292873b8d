//! `<log.dirs>/cleaner-offset-checkpoint`: each compacted partition's first dirty offset, so
//! cleanable ratios survive a restart (Kafka's `LogCleanerManager` checkpoint, written by
//! `OffsetCheckpointFile`).
//!
//! Format (Kafka's `CheckpointFile`): a version line `0`, a count line, then one
//! `<topic> <partition> <offset>` line per partition. Written to `<file>.tmp`, fsynced and
//! renamed, so a reader finds a whole file. All shards share the one file of the log dir: a
//! process-wide mutex serializes the read-modify-write (the file is tiny and written once per
//! cleaning pass, so the blocking std::fs calls are short).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use super::LogError;

/// Kafka's file name (`LogManager.CleanerOffsetCheckpointFile`).
pub const CLEANER_OFFSET_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Kafka's `OffsetCheckpointFile.CURRENT_VERSION`.
const CHECKPOINT_VERSION: i32 = 0;

/// Serializes read-modify-write of the checkpoint between shards.
static CHECKPOINT_LOCK: Mutex<()> = Mutex::new(());

/// The checkpointed first dirty offsets by (topic, partition); empty when there is no file.
/// Lines that do not parse are skipped with a warning (the offsets only steer which bytes count
/// as dirty; a lost one means the partition is treated as wholly dirty).
pub fn read_cleaner_checkpoint(log_dir: &Path) -> Result<BTreeMap<(String, i32), i64>, LogError> {
    let _lock = CHECKPOINT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    read_unlocked(log_dir)
}

/// Sets (`Some`) or removes (`None`) the entries of `updates`, keeping every other entry.
pub fn write_cleaner_checkpoint(
    log_dir: &Path,
    updates: &[((String, i32), Option<i64>)],
) -> Result<(), LogError> {
    let _lock = CHECKPOINT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut entries = read_unlocked(log_dir)?;
    for (key, offset) in updates {
        match offset {
            Some(offset) => entries.insert(key.clone(), *offset),
            None => entries.remove(key),
        };
    }
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for ((topic, partition), offset) in &entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    let path = log_dir.join(CLEANER_OFFSET_CHECKPOINT_FILE);
    let temporary = log_dir.join(format!("{CLEANER_OFFSET_CHECKPOINT_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|e| LogError::io("write", &temporary, e))?;
    std::fs::rename(&temporary, &path).map_err(|source| LogError::Rename {
        from: temporary.clone(),
        to: path.clone(),
        source,
    })?;
    std::fs::File::open(log_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync_dir", log_dir, e))
}

fn read_unlocked(log_dir: &Path) -> Result<BTreeMap<(String, i32), i64>, LogError> {
    let path = log_dir.join(CLEANER_OFFSET_CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(LogError::io("read", &path, e)),
    };
    Ok(parse(&text, &path))
}

/// Parses the checkpoint text; a wrong version or line is logged and skipped.
fn parse(text: &str, path: &Path) -> BTreeMap<(String, i32), i64> {
    let mut lines = text.lines();
    let mut entries = BTreeMap::new();
    if lines.next().map(str::trim) != Some("0") {
        tracing::warn!(path = %path.display(), "unknown cleaner checkpoint version; ignoring it");
        return entries;
    }
    let _count = lines.next();
    for line in lines {
        let fields: Vec<&str> = line.split(' ').collect();
        let parsed = match fields.as_slice() {
            [topic, partition, offset] => partition
                .parse::<i32>()
                .ok()
                .zip(offset.parse::<i64>().ok())
                .map(|(p, o)| ((topic.to_string(), p), o)),
            _ => None,
        };
        match parsed {
            Some((key, offset)) => {
                entries.insert(key, offset);
            }
            None => tracing::warn!(path = %path.display(), line, "skipping bad checkpoint line"),
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_merges_updates() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_cleaner_checkpoint(dir.path()).unwrap().is_empty());
        let a = ("topic-a".to_string(), 0);
        let b = ("topic.b".to_string(), 3);
        write_cleaner_checkpoint(dir.path(), &[(a.clone(), Some(10)), (b.clone(), Some(7))])
            .unwrap();
        write_cleaner_checkpoint(dir.path(), &[(a.clone(), Some(42))]).unwrap();
        let text =
            std::fs::read_to_string(dir.path().join(CLEANER_OFFSET_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\ntopic-a 0 42\ntopic.b 3 7\n");
        write_cleaner_checkpoint(dir.path(), &[(b.clone(), None)]).unwrap();
        let entries = read_cleaner_checkpoint(dir.path()).unwrap();
        assert_eq!(entries.into_iter().collect::<Vec<_>>(), vec![(a, 42)]);
    }

    #[test]
    fn bad_lines_are_skipped() {
        let entries = parse("0\n3\nt 0 5\nbroken\nt x 1\n", Path::new("f"));
        assert_eq!(
            entries.into_iter().collect::<Vec<_>>(),
            vec![(("t".to_string(), 0), 5)]
        );
        assert!(parse("1\n0\n", Path::new("f")).is_empty());
    }
}
