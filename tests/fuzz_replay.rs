//! The bounded, stable version of the fuzz targets (issue 14): every committed file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through the same function
//! `fuzz/fuzz_targets/<target>.rs` calls (`ringtail::fuzzing`), with the allocation bound
//! asserted as under libFuzzer. Runs in `cargo test`; needs no nightly.
//!
//! The allocation counters are process-wide: the tests hold `ONE_AT_A_TIME`, so inputs are
//! measured one at a time.

use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOCATOR: ringtail::fuzzing::CountingAllocator = ringtail::fuzzing::CountingAllocator;

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_committed_fuzz_input_replays_within_its_allocation_bound() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut report = Vec::new();
    for &(target, ..) in ringtail::fuzzing::TARGETS {
        let corpus = files_in(&root.join("corpus").join(target));
        let regressions = files_in(&root.join("regressions").join(target));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{target}/ has no seeds (scripts/fuzz-seeds.py writes them)"
        );
        assert!(
            root.join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{target}.rs is missing"
        );
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("read a fuzz input");
            let outcome = std::panic::catch_unwind(|| {
                assert!(ringtail::fuzzing::run_target(target, &data));
            });
            if outcome.is_err() {
                panic!(
                    "fuzz input {} of target {target} failed (above)",
                    path.display()
                );
            }
        }
        report.push(format!(
            "{target}: {} corpus + {} regression files",
            corpus.len(),
            regressions.len()
        ));
    }
    eprintln!("{}", report.join("\n"));
}

/// The bound is enforced: an allocation far above it is caught (so the replay test can fail).
#[test]
fn allocation_bound_catches_an_oversized_allocation() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let outcome = std::panic::catch_unwind(|| {
        ringtail::fuzzing::check_alloc_bound("probe", &[0u8; 10], 0, |_| {
            let big: Vec<u8> = Vec::with_capacity(64 << 20);
            std::hint::black_box(&big);
        });
    });
    assert!(
        outcome.is_err(),
        "a 64 MiB allocation for 10 bytes must break the bound"
    );
}
