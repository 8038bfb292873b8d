//! Crash-safe replacement of a whole log directory by another one (the `__consumer_offsets`
//! compaction rewrites a partition into a fresh directory, then swaps it in).
//!
//! Kafka's log cleaner swaps segments one at a time (`.cleaned` -> `.swap` -> live); a rewrite
//! of the whole partition swaps directories instead, in three steps: the live directory is
//! renamed to `old`, the closed `replacement` to the live name, the parent is fsynced, then
//! `old` is removed. [`DirSwap::recover`] finishes or undoes a swap a crash interrupted: a live
//! directory wins and leftovers go; without one, a `replacement` next to `old` was complete
//! before the first rename, so it becomes the live directory, else `old` moves back.
//!
//! Invariant: at every step one of `live`, `replacement` or `old` holds a whole log, and
//! [`DirSwap::recover`] finds it. The three paths are distinct and share one parent directory,
//! so the renames are atomic and one parent fsync makes them durable.

use std::path::{Path, PathBuf};

use super::LogError;

/// The three names of one directory swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirSwap {
    /// The log directory readers open.
    pub live: PathBuf,
    /// The fully written and closed log that replaces `live`.
    pub replacement: PathBuf,
    /// The name `live` takes while `replacement` moves in; removed at the end.
    pub old: PathBuf,
}

impl DirSwap {
    /// The swap of `live` with `replacement`, parking the old log at `old`.
    ///
    /// Panics unless the three paths are absolute, distinct and in one parent directory: they
    /// are built by the caller, never read from input.
    pub fn new(live: PathBuf, replacement: PathBuf, old: PathBuf) -> DirSwap {
        assert!(
            live.is_absolute(),
            "invariant: log directories are absolute"
        );
        assert_ne!(live, replacement, "invariant: swap paths are distinct");
        assert_ne!(live, old, "invariant: swap paths are distinct");
        assert_ne!(replacement, old, "invariant: swap paths are distinct");
        assert_eq!(
            live.parent(),
            replacement.parent(),
            "invariant: swap paths share one parent (atomic rename)"
        );
        assert_eq!(
            live.parent(),
            old.parent(),
            "invariant: swap paths share one parent (atomic rename)"
        );
        DirSwap {
            live,
            replacement,
            old,
        }
    }

    /// Removes a leftover `replacement` directory, so a new one can be written from scratch.
    pub fn clear_replacement(&self) -> Result<(), LogError> {
        remove_dir_if_exists(&self.replacement)
    }

    /// Moves the closed `replacement` in place of `live` and removes the old log; durable when
    /// it returns (the parent directory is fsynced between the renames and the removal).
    pub fn commit(&self) -> Result<(), LogError> {
        rename(&self.live, &self.old)?;
        rename(&self.replacement, &self.live)?;
        sync_dir(self.parent())?;
        remove_dir_if_exists(&self.old)
    }

    /// Finishes or undoes a swap a crash interrupted (see the module docs). Returns true when
    /// it had to move a directory into the live name.
    pub fn recover(&self) -> Result<bool, LogError> {
        let mut moved = false;
        if !self.live.exists() && self.old.exists() {
            let source = if self.replacement.exists() {
                &self.replacement
            } else {
                &self.old
            };
            tracing::warn!(from = %source.display(), to = %self.live.display(), "finishing an interrupted log directory swap");
            rename(source, &self.live)?;
            sync_dir(self.parent())?;
            moved = true;
        }
        remove_dir_if_exists(&self.replacement)?;
        remove_dir_if_exists(&self.old)?;
        Ok(moved)
    }

    fn parent(&self) -> &Path {
        self.live
            .parent()
            .expect("an absolute log directory has a parent")
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), LogError> {
    std::fs::rename(from, to).map_err(|source| LogError::Rename {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })
}

fn remove_dir_if_exists(dir: &Path) -> Result<(), LogError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("remove_dir", dir, e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync_dir", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A swap inside a fresh temporary directory, and a helper that makes a one-file log.
    fn setup() -> (tempfile::TempDir, DirSwap) {
        let root = tempfile::tempdir().expect("tempdir");
        let swap = DirSwap::new(
            root.path().join("p-0"),
            root.path().join("p-0.compacting"),
            root.path().join("p-0.old"),
        );
        (root, swap)
    }

    fn make(dir: &Path, content: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("data"), content).unwrap();
    }

    fn content(dir: &Path) -> Option<String> {
        std::fs::read_to_string(dir.join("data")).ok()
    }

    #[test]
    fn commit_moves_the_replacement_in() {
        let (_root, swap) = setup();
        make(&swap.live, "old");
        make(&swap.replacement, "new");
        swap.commit().expect("commit");
        assert_eq!(content(&swap.live).as_deref(), Some("new"));
        assert!(!swap.replacement.exists());
        assert!(!swap.old.exists());
    }

    #[test]
    fn recover_finds_the_whole_log_after_a_crash_at_every_step() {
        // (live, replacement, old) present before recovery -> content of live after it.
        type Case = (
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: [Case; 5] = [
            ("no swap", Some("a"), None, None, Some("a")),
            (
                "replacement half written",
                Some("a"),
                Some("b"),
                None,
                Some("a"),
            ),
            (
                "after the first rename",
                None,
                Some("b"),
                Some("a"),
                Some("b"),
            ),
            (
                "after the second rename",
                Some("b"),
                None,
                Some("a"),
                Some("b"),
            ),
            ("old only", None, None, Some("a"), Some("a")),
        ];
        for (name, live, replacement, old, expected) in cases {
            let (_root, swap) = setup();
            for (dir, value) in [
                (&swap.live, live),
                (&swap.replacement, replacement),
                (&swap.old, old),
            ] {
                if let Some(value) = value {
                    make(dir, value);
                }
            }
            swap.recover().expect("recover");
            assert_eq!(content(&swap.live).as_deref(), expected, "{name}");
            assert!(!swap.replacement.exists(), "{name}: replacement removed");
            assert!(!swap.old.exists(), "{name}: old removed");
        }
    }

    #[test]
    fn rename_errors_name_both_paths() {
        let (_root, swap) = setup();
        let error = swap.commit().expect_err("nothing to rename");
        assert!(
            matches!(&error, LogError::Rename { from, to, .. } if *from == swap.live && *to == swap.old),
            "{error:?}"
        );
    }
}
