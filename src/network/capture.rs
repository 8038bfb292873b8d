//! `RINGTAIL_CAPTURE_DIR`: when set at start-up, every request frame read (the bytes after the
//! size prefix) is also written to `<dir>/<pid>-<n>.bin`, to seed the fuzz corpora from real
//! client traffic (`fuzz/README.md`). Unset (the normal case) it costs one load of a
//! `OnceLock` per frame. Not for production: the files hold whatever clients sent, secrets
//! included.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static CAPTURE_DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
static CAPTURED: AtomicU64 = AtomicU64::new(0);

/// Writes `frame` to the capture directory if `RINGTAIL_CAPTURE_DIR` is set; errors are
/// ignored (capturing never affects serving).
pub(super) fn frame(frame: &[u8]) {
    let dir =
        CAPTURE_DIR.get_or_init(|| std::env::var_os("RINGTAIL_CAPTURE_DIR").map(PathBuf::from));
    if let Some(dir) = dir {
        let n = CAPTURED.fetch_add(1, Ordering::Relaxed);
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join(format!("{}-{n}.bin", std::process::id())), frame);
    }
}
