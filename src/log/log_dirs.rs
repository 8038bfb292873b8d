//! The broker's log directories (`log.dirs`, JBOD) as one process-wide table: which partition
//! lives in which directory, which directories are offline, and where a new partition goes.
//!
//! Kafka's `LogManager` (`liveLogDirs`, `nextLogDirs`) and `LogDirFailureChannel` in one place:
//! - A new partition goes to the online directory holding the fewest partitions (Kafka's
//!   `LogManager.nextLogDirs`; ties go to the earlier entry of `log.dirs`).
//! - A write or fdatasync failure on any log in a directory takes the whole directory offline
//!   ([`mark_offline`], Kafka's `LogDirFailureChannel.maybeAddOfflineLogDir`); it stays offline
//!   until the broker restarts. Every shard's failure handler then takes its partitions in that
//!   directory offline (`ReplicaManager::handle_log_dir_failures`), and shard 0 stops the broker
//!   when no directory is left or the first directory (which holds the metadata file, Kafka's
//!   `metadata.log.dir` default) failed, as Kafka's `LogDirFailureHandler` halts.
//!
//! Shared by every shard (a `Mutex`, taken when a partition is placed, opened or deleted and
//! when a directory fails; the request path reads [`failure_generation`], one atomic load, and
//! takes the lock only after some directory failed). Directories are keyed by their absolute
//! path, so brokers of unit tests in one process (temporary directories) never meet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One directory of `log.dirs`, as [`snapshot`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirStatus {
    /// Absolute path.
    pub path: PathBuf,
    /// `directory.id` from the directory's `meta.properties` (KIP-858; Kafka's `Uuid` text).
    pub directory_id: String,
    /// Why the directory is offline (the first failure's message), if it is.
    pub offline: Option<String>,
    /// Partitions placed in or found in the directory.
    pub partitions: usize,
}

#[derive(Default)]
struct Registry {
    dirs: Vec<LogDirStatus>,
    /// `(topic, partition)` -> index in `dirs`.
    assignments: HashMap<(String, i32), usize>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
/// Bumped on every directory failure; 0 while no directory ever failed.
static FAILURES: AtomicU64 = AtomicU64::new(0);

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    // A poisoned lock still holds a consistent table: every change below is one statement.
    let mut guard = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Registry::default))
}

/// Adds `dirs` (absolute path, directory id) to the table with the partitions each one holds
/// (`<topic>-<partition>` subdirectories, the internal topics included, as Kafka counts every
/// log). Called by `server` at start-up, before any shard runs; registering a directory again
/// keeps its state. A partition found in two directories is refused, as Kafka's `LogManager`
/// refuses "Duplicate log directories" (the error names both).
pub fn register(dirs: &[(PathBuf, String)]) -> Result<(), String> {
    let found: Vec<Vec<(String, i32)>> =
        dirs.iter().map(|(path, _)| partition_dirs(path)).collect();
    with(|registry| {
        for ((path, directory_id), partitions) in dirs.iter().zip(found) {
            let index = match registry.dirs.iter().position(|d| &d.path == path) {
                Some(index) => index,
                None => {
                    registry.dirs.push(LogDirStatus {
                        path: path.clone(),
                        directory_id: directory_id.clone(),
                        offline: None,
                        partitions: 0,
                    });
                    registry.dirs.len() - 1
                }
            };
            for key in partitions {
                let placed = *registry.assignments.entry(key.clone()).or_insert(index);
                if placed != index {
                    return Err(format!(
                        "Duplicate log directories for {}-{} are found in both {} and {}",
                        key.0,
                        key.1,
                        registry.dirs[placed].path.display(),
                        path.display()
                    ));
                }
            }
        }
        recount(registry);
        Ok(())
    })
}

/// The `<topic>-<partition>` subdirectories of `dir` (Kafka's log dir names; names with a
/// `.` suffix such as `-delete` or `-future` are not partitions).
fn partition_dirs(dir: &Path) -> Vec<(String, i32)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (topic, partition) = name.rsplit_once('-')?;
            let partition: i32 = partition.parse().ok()?;
            (!topic.is_empty() && partition >= 0).then(|| (topic.to_string(), partition))
        })
        .collect()
}

fn recount(registry: &mut Registry) {
    for dir in &mut registry.dirs {
        dir.partitions = 0;
    }
    for &index in registry.assignments.values() {
        registry.dirs[index].partitions += 1;
    }
}

/// The directory for `(topic, partition)`: the registered directory it was found in or placed
/// in before, else (placing it now) the online directory with the fewest partitions (Kafka's
/// `nextLogDirs`). `None` when no directory is registered (then the caller's default applies)
/// or every one is offline. Only the registered directories among `log_dirs` (the broker's
/// `log.dirs`) are considered, so brokers or tests sharing a process never place into each
/// other's directories.
pub fn dir_for_partition(log_dirs: &[PathBuf], topic: &str, partition: i32) -> Option<PathBuf> {
    with(|registry| {
        let key = (topic.to_string(), partition);
        if let Some(&index) = registry.assignments.get(&key) {
            if log_dirs.contains(&registry.dirs[index].path) {
                return Some(registry.dirs[index].path.clone());
            }
        }
        let (index, _) = registry
            .dirs
            .iter()
            .enumerate()
            .filter(|(_, d)| d.offline.is_none() && log_dirs.contains(&d.path))
            .min_by_key(|(i, d)| (d.partitions, *i))?;
        registry.assignments.insert(key, index);
        registry.dirs[index].partitions += 1;
        Some(registry.dirs[index].path.clone())
    })
}

/// Forgets the placement of a deleted partition.
pub fn partition_deleted(topic: &str, partition: i32) {
    with(|registry| {
        if let Some(index) = registry.assignments.remove(&(topic.to_string(), partition)) {
            registry.dirs[index].partitions -= 1;
        }
    });
}

/// Takes the log directory holding `path` (the directory itself or anything below it) offline
/// after a storage error; the first reason is kept. Returns true if it was online. Paths in no
/// registered directory are ignored (false).
pub fn mark_offline(path: &Path, reason: &str) -> bool {
    let newly = with(|registry| {
        let Some(dir) = registry.dirs.iter_mut().find(|d| path.starts_with(&d.path)) else {
            return false;
        };
        if dir.offline.is_some() {
            return false;
        }
        dir.offline = Some(reason.to_string());
        tracing::error!(
            dir = %dir.path.display(),
            "log dir goes offline after a storage error ({reason}): every partition in it answers \
             KAFKA_STORAGE_ERROR until the broker restarts"
        );
        true
    });
    if newly {
        FAILURES.fetch_add(1, Ordering::SeqCst);
    }
    newly
}

/// Bumped on every directory failure (0: none ever failed). Failure handlers compare it with
/// the value they saw last.
pub fn failure_generation() -> u64 {
    FAILURES.load(Ordering::SeqCst)
}

/// Why the registered log directory holding `path` is offline, if it is. One atomic load while
/// no directory ever failed.
pub fn offline_reason(path: &Path) -> Option<String> {
    if failure_generation() == 0 {
        return None;
    }
    with(|registry| {
        registry
            .dirs
            .iter()
            .find(|d| path.starts_with(&d.path))
            .and_then(|d| d.offline.clone())
    })
}

/// Whether `(topic, partition)` is placed in an offline directory.
pub fn partition_offline(topic: &str, partition: i32) -> bool {
    if failure_generation() == 0 {
        return false;
    }
    with(|registry| {
        registry
            .assignments
            .get(&(topic.to_string(), partition))
            .is_some_and(|&index| registry.dirs[index].offline.is_some())
    })
}

/// Every registered directory among `paths`, in that order (unregistered ones are left out).
pub fn snapshot(paths: &[PathBuf]) -> Vec<LogDirStatus> {
    with(|registry| {
        paths
            .iter()
            .filter_map(|p| registry.dirs.iter().find(|d| &d.path == p).cloned())
            .collect()
    })
}

/// The directory index (in `paths`) each placed partition of `paths`' directories is in.
pub fn placements(paths: &[PathBuf]) -> HashMap<(String, i32), usize> {
    with(|registry| {
        registry
            .assignments
            .iter()
            .filter_map(|(key, &index)| {
                let path = &registry.dirs[index].path;
                let position = paths.iter().position(|p| p == path)?;
                Some((key.clone(), position))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_by_fewest_partitions_and_goes_offline_per_dir() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir(a.path().join("old-0")).unwrap();
        std::fs::create_dir(a.path().join("old-1.delete")).unwrap();
        let (a, b) = (a.path().to_path_buf(), b.path().to_path_buf());
        register(&[(a.clone(), "A".into()), (b.clone(), "B".into())]).unwrap();
        let dirs = [a.clone(), b.clone()];
        assert_eq!(
            dir_for_partition(&dirs, "old", 0),
            Some(a.clone()),
            "found where it is"
        );
        assert_eq!(
            dir_for_partition(&dirs, "new", 0),
            Some(b.clone()),
            "fewest partitions"
        );
        assert_eq!(
            dir_for_partition(&dirs, "new", 1),
            Some(a.clone()),
            "tie: the first dir"
        );
        assert_eq!(
            dir_for_partition(&dirs, "new", 0),
            Some(b.clone()),
            "placed once"
        );
        assert!(offline_reason(&b.join("new-0")).is_none());
        let generation = failure_generation();
        assert!(mark_offline(
            &b.join("new-0/00000000000000000000.log"),
            "EIO"
        ));
        assert!(!mark_offline(&b, "again"), "the first reason is kept");
        assert!(failure_generation() > generation);
        assert_eq!(offline_reason(&b.join("new-0")).as_deref(), Some("EIO"));
        assert!(partition_offline("new", 0));
        assert!(!partition_offline("new", 1));
        assert_eq!(
            dir_for_partition(&dirs, "new", 2),
            Some(a.clone()),
            "offline dirs get none"
        );
        let status = snapshot(&[a.clone(), b.clone()]);
        assert_eq!(status[0].partitions, 3);
        assert_eq!(status[1].offline.as_deref(), Some("EIO"));
        partition_deleted("new", 2);
        assert_eq!(snapshot(std::slice::from_ref(&a))[0].partitions, 2);
    }

    #[test]
    fn a_partition_in_two_dirs_is_refused() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [&a, &b] {
            std::fs::create_dir(dir.path().join("twice-3")).unwrap();
        }
        let error = register(&[
            (a.path().to_path_buf(), "A".into()),
            (b.path().to_path_buf(), "B".into()),
        ])
        .unwrap_err();
        assert!(
            error.contains("Duplicate log directories for twice-3"),
            "{error}"
        );
    }
}
