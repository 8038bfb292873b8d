//! A cleaning pass against real segment files: compaction, reopening (clean and after a crash),
//! and recovery finishing an interrupted swap.

use std::path::Path;

use super::*;
use crate::log::tests::run;
use crate::log::LogConfig;
use crate::protocol::record_batch::{set_base_offset, validate_batch, Compression};
use crate::protocol::records::{walk_records, RecordBatchBuilder};

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 200,
        segment_ms: u64::MAX,
        index_interval_bytes: 0,
        segment_index_bytes: 1 << 20,
        preallocate: false,
    }
}

fn cleaner_config() -> CleanerConfig {
    CleanerConfig {
        delete_retention_ms: 86_400_000,
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        dedupe_buffer_bytes: 1 << 20,
    }
}

/// Appends one batch of `(key, value)` records.
async fn append(log: &Log, records: &[(&str, &str)], compression: Compression) {
    let mut builder = RecordBatchBuilder::new(256);
    for (key, value) in records {
        builder.append(Some(key.as_bytes()), value.as_bytes(), 1_000);
    }
    let mut bytes = builder
        .finish(compression, None, -1, -1, -1)
        .unwrap()
        .to_vec();
    set_base_offset(&mut bytes, log.log_end_offset());
    let header = validate_batch(&bytes, 1 << 20).unwrap();
    log.append(&bytes, &[header]).await.unwrap();
}

/// Every record of the log as (offset, key, value), reading batch by batch as a consumer does.
async fn read_all(log: &Log) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 20, i64::MAX).await.unwrap();
        assert!(
            !bytes.is_empty(),
            "a read below the log end returns a batch"
        );
        for (position, header) in BatchIter::new(&bytes) {
            let batch = &bytes[position..position + header.size_bytes()];
            let mut scratch = Vec::new();
            walk_records(&header, batch, &mut scratch, |r| {
                out.push((
                    r.offset,
                    String::from_utf8_lossy(r.key.unwrap()).into_owned(),
                    String::from_utf8_lossy(r.value.unwrap()).into_owned(),
                ))
            })
            .unwrap();
            offset = header.next_offset();
        }
    }
    out
}

/// Three rounds over keys a..d (each batch with a filler key x) in several segments, then a
/// tail batch; returns every record written as (offset, key, value).
async fn fill(log: &Log, compression: Compression) -> Vec<(i64, String, String)> {
    let mut written = Vec::new();
    for round in 0..3 {
        for key in ["a", "b", "c", "d"] {
            let value = format!("{key}{round}");
            let offset = log.log_end_offset();
            append(log, &[(key, value.as_str()), ("x", "filler")], compression).await;
            written.push((offset, key.to_string(), value));
            written.push((offset + 1, "x".to_string(), "filler".to_string()));
        }
    }
    let offset = log.log_end_offset();
    append(log, &[("y", "tail")], compression).await;
    written.push((offset, "y".to_string(), "tail".to_string()));
    written
}

/// What compaction must leave below `active_base`: the latest record of each key there.
fn expected_sealed(
    written: &[(i64, String, String)],
    active_base: i64,
) -> Vec<(i64, String, String)> {
    let sealed: Vec<_> = written
        .iter()
        .filter(|r| r.0 < active_base)
        .cloned()
        .collect();
    let mut out: Vec<_> = sealed
        .iter()
        .filter(|r| !sealed.iter().any(|later| later.1 == r.1 && later.0 > r.0))
        .cloned()
        .collect();
    out.sort();
    out
}

fn sealed_part(records: &[(i64, String, String)], active_base: i64) -> Vec<(i64, String, String)> {
    records
        .iter()
        .filter(|r| r.0 < active_base)
        .cloned()
        .collect()
}

#[test]
fn clean_keeps_the_latest_record_per_key_and_survives_reopen() {
    for compression in [Compression::None, Compression::Zstd] {
        for recover in [false, true] {
            run(move || async move {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("t-0");
                let log = Log::open(path.clone(), log_config(), false).await.unwrap();
                let written = fill(&log, compression).await;
                let before = log.segment_count();
                assert!(before > 3, "small segments roll: {before}");
                let summary = log
                    .clean(&cleaner_config(), None, 10_000)
                    .await
                    .unwrap()
                    .expect("cleanable");
                let active_base = log.segments.borrow().last().unwrap().base_offset();
                assert_eq!(summary.first_dirty_offset, active_base);
                assert!(summary.bytes_after < summary.bytes_before);
                let records = read_all(&log).await;
                assert_eq!(
                    sealed_part(&records, active_base),
                    expected_sealed(&written, active_base)
                );
                assert!(
                    sealed_part(&records, active_base).len()
                        < sealed_part(&written, active_base).len()
                );
                let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
                assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
                assert!(
                    log.clean(&cleaner_config(), Some(active_base), 10_000)
                        .await
                        .unwrap()
                        .is_none(),
                    "nothing dirty after a pass"
                );
                // A pass over an all-dirty log merges the now small segments into groups.
                let cleaned_count = log.segment_count();
                log.clean(&cleaner_config(), None, 10_000)
                    .await
                    .unwrap()
                    .expect("cleanable");
                assert!(log.segment_count() < cleaned_count, "groups were merged");
                assert_eq!(read_all(&log).await, records);
                if recover {
                    drop(log); // as after a crash: no close, recovery scans
                } else {
                    log.close().await.unwrap();
                }
                for entry in std::fs::read_dir(&path).unwrap() {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    assert!(
                        !name.ends_with(".cleaned") && !name.ends_with(".swap"),
                        "{name}"
                    );
                }
                let reopened = Log::open(path.clone(), log_config(), recover)
                    .await
                    .unwrap();
                assert_eq!(read_all(&reopened).await, records);
                assert_eq!(reopened.log_end_offset(), 25);
                // Reads at an offset inside a gap return the next surviving record.
                let bytes = reopened.read(1, 1 << 20, i64::MAX).await.unwrap();
                let (_, first) = BatchIter::new(&bytes).next().unwrap();
                assert!(first.last_offset() >= 1);
                append(&reopened, &[("a", "a3")], compression).await;
                assert_eq!(reopened.log_end_offset(), 26);
                reopened.close().await.unwrap();
            });
        }
    }
}

#[test]
fn recovery_finishes_a_committed_swap_and_drops_an_uncommitted_one() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let cleaned_dir = dir.path().join("t-0");
        let crashed_dir = dir.path().join("t-1");
        let log = Log::open(cleaned_dir.clone(), log_config(), false)
            .await
            .unwrap();
        fill(&log, Compression::Lz4).await;
        log.close().await.unwrap();
        copy_dir(&cleaned_dir, &crashed_dir);
        // One group: every sealed segment is cleaned into the segment at offset 0.
        let one_group = LogConfig {
            segment_bytes: 100_000,
            ..log_config()
        };
        let log = Log::open(cleaned_dir.clone(), one_group.clone(), false)
            .await
            .unwrap();
        log.clean(&cleaner_config(), None, 10_000)
            .await
            .unwrap()
            .expect("cleaned");
        let expected = read_all(&log).await;
        log.close().await.unwrap();
        let first_group_base = 0;
        // A crash after the commit point: the cleaned `.log` is there as `.log.swap`, the old
        // segments are not removed yet, the indexes were not renamed.
        let swap = segment_file_path(&crashed_dir, first_group_base, LOG_FILE_SUFFIX);
        let mut swap_name = swap.into_os_string();
        swap_name.push(SWAP_FILE_SUFFIX);
        std::fs::copy(
            segment_file_path(&cleaned_dir, first_group_base, LOG_FILE_SUFFIX),
            &swap_name,
        )
        .unwrap();
        // And an uncommitted pass of a later group.
        let stray = crashed_dir.join(format!("{:020}.log.cleaned", 1));
        std::fs::write(&stray, b"garbage").unwrap();
        let recovered = Log::open(crashed_dir.clone(), one_group, true)
            .await
            .unwrap();
        assert_eq!(
            recovered.segment_count(),
            2,
            "the swap replaced every sealed segment"
        );
        assert!(!stray.exists());
        assert!(!std::path::PathBuf::from(&swap_name).exists());
        let records = read_all(&recovered).await;
        let active_base = recovered.segments.borrow().last().unwrap().base_offset();
        assert_eq!(
            sealed_part(&records, active_base),
            sealed_part(&expected, active_base)
        );
        recovered.close().await.unwrap();
    });
}

#[test]
fn a_log_changed_under_the_pass_is_left_alone() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let log = Log::open(path.clone(), log_config(), false).await.unwrap();
        fill(&log, Compression::None).await;
        log.close().await.unwrap();
        assert!(
            log.clean(&cleaner_config(), None, 10_000).await.is_err(),
            "closed log"
        );
        for entry in std::fs::read_dir(&path).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".cleaned"), "{name}");
        }
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
