//! A `__consumer_offsets` log cleaned by the log cleaner replays to the state the whole log
//! gave: later commits win, offset and group tombstones stay deleted (also once the cleaner
//! dropped them after `delete.retention.ms`), across gaps and a reopen.

use super::*;
use crate::group_coordinator::coordinator_state::CoordinatorState;
use crate::group_coordinator::records::{OffsetCommitKey, OffsetCommitValue};
use crate::group_coordinator::GroupSettings;

const DELETE_RETENTION_MS: i64 = 1_000;

fn run<F: std::future::Future<Output = ()> + 'static>(make: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor")
        .run(make());
}

fn cleaner_config() -> CleanerConfig {
    CleanerConfig {
        delete_retention_ms: DELETE_RETENTION_MS,
        min_cleanable_dirty_ratio: 0.0,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        dedupe_buffer_bytes: 1 << 20,
    }
}

fn commit(group: &str, partition: i32, offset: Option<i64>) -> CoordinatorRecord {
    CoordinatorRecord::OffsetCommit {
        key: OffsetCommitKey {
            group: group.into(),
            topic: "t".into(),
            partition,
        },
        value: offset.map(|offset| OffsetCommitValue {
            offset,
            leader_epoch: 0,
            metadata: format!("m{offset}"),
            commit_timestamp: 0,
        }),
    }
}

/// Appends `records` as one batch and remembers them.
async fn put(
    log: &PartitionLog,
    written: &mut Vec<CoordinatorRecord>,
    records: &[CoordinatorRecord],
) {
    log.append(records, 1_000).await.expect("append");
    written.extend(records.iter().cloned());
}

fn is_tombstone(record: &CoordinatorRecord) -> bool {
    matches!(
        record,
        CoordinatorRecord::OffsetCommit { value: None, .. }
            | CoordinatorRecord::GroupMetadata { value: None, .. }
    )
}

/// Every group's committed offsets after replaying `records`, as (group, partition, offset).
fn replayed(records: Vec<CoordinatorRecord>) -> Vec<(String, i32, i64)> {
    let mut state = CoordinatorState::new(0, 1, GroupSettings::default());
    for record in records {
        state.replay(record, 0);
    }
    state.set_loaded(true, 0);
    let mut out: Vec<(String, i32, i64)> = state
        .groups()
        .flat_map(|g| {
            g.offsets
                .iter()
                .map(|((_, partition), value)| (g.group_id.clone(), *partition, value.offset))
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn cleaned_log_replays_to_the_same_state() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), 0, 300).await.expect("open");
        let mut written = Vec::new();
        for round in 0..40 {
            let batch = [
                commit("g", round as i32 % 4, Some(round)),
                commit("gone", 0, Some(round)),
            ];
            put(&log, &mut written, &batch).await;
        }
        put(&log, &mut written, &[commit("g", 3, None)]).await;
        put(&log, &mut written, &[commit("gone", 0, None)]).await;
        for round in 0..10 {
            put(&log, &mut written, &[commit("g", 0, Some(100 + round))]).await;
        }
        let expected = replayed(written.clone());
        assert_eq!(
            expected,
            vec![
                ("g".into(), 0, 109),
                ("g".into(), 1, 37),
                ("g".into(), 2, 38)
            ]
        );
        let bytes_before = log.log.size_bytes();
        let stored_before = log.read_all().await.expect("read").len();

        let first = log
            .clean(&cleaner_config(), None, 10_000)
            .await
            .expect("clean")
            .expect("something to clean");
        // Each segment is rewritten on its own (grouped by its size before cleaning).
        assert!(log.log.size_bytes() < bytes_before);
        let after_first = log.read_all().await.expect("read");
        assert!(after_first.len() < stored_before);
        assert!(
            after_first.iter().any(is_tombstone),
            "tombstones stay until delete.retention.ms"
        );
        assert_eq!(replayed(after_first), expected);

        // More commits make the log dirty again; past the delete horizon the tombstones go.
        for round in 0..10 {
            put(&log, &mut written, &[commit("g", 1, Some(200 + round))]).await;
        }
        let expected = replayed(written.clone());
        assert_eq!(expected[1], ("g".into(), 1, 209));
        log.clean(
            &cleaner_config(),
            Some(first.first_dirty_offset),
            10_000 + DELETE_RETENTION_MS + 1,
        )
        .await
        .expect("clean")
        .expect("something to clean");
        let after_second = log.read_all().await.expect("read");
        let sealed_tombstones = after_second.iter().filter(|r| is_tombstone(r)).count();
        assert_eq!(sealed_tombstones, 0, "tombstones removed past the horizon");
        assert_eq!(replayed(after_second), expected);

        log.close().await.expect("close");
        let reopened = PartitionLog::open(dir.path(), 0, 300)
            .await
            .expect("reopen");
        assert_eq!(replayed(reopened.read_all().await.expect("read")), expected);
        reopened.close().await.expect("close");
    });
}

/// (committed offsets as `replayed`, pending (group, partition, offset) of producer 7 and 8)
/// after replaying the log batch by batch, as `GroupCoordinator::load` does.
async fn replayed_txn(log: &PartitionLog) -> (Vec<(String, i32, i64)>, Vec<(i64, i32, i64)>) {
    let mut state = CoordinatorState::new(0, 1, GroupSettings::default());
    for batch in log.read_all_batches().await.expect("read") {
        state.replay_batch(0, batch, 0);
    }
    state.set_loaded(true, 0);
    let mut committed: Vec<(String, i32, i64)> = state
        .groups()
        .flat_map(|g| {
            g.offsets
                .iter()
                .map(|((_, partition), value)| (g.group_id.clone(), *partition, value.offset))
                .collect::<Vec<_>>()
        })
        .collect();
    committed.sort();
    let mut pending = Vec::new();
    for producer_id in [7, 8] {
        for partition in 0..4 {
            if let Some(p) = state.pending_txn_offset(producer_id, "g", "t", partition) {
                pending.push((producer_id, partition, p.value.offset));
            }
        }
    }
    (committed, pending)
}

#[test]
fn cleaning_keeps_transactional_offsets_and_markers_correct() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), 0, 300).await.expect("open");
        let mut ignored = Vec::new();
        // p0: committed 1, an aborted transaction writes 50: stays 1 (the cleaner must not let
        // the aborted record supersede the committed one).
        put(&log, &mut ignored, &[commit("g", 0, Some(1))]).await;
        log.append_transactional(&[commit("g", 0, Some(50))], 8, 0, 1_000)
            .await
            .expect("txn");
        log.append_marker(8, 0, 0, false, 1_000)
            .await
            .expect("abort");
        // p1: a committed transaction writes 10.
        log.append_transactional(&[commit("g", 1, Some(10))], 7, 0, 1_000)
            .await
            .expect("txn");
        log.append_marker(7, 0, 0, true, 1_000)
            .await
            .expect("commit");
        // p2: a committed transaction, then a later plain commit wins.
        log.append_transactional(&[commit("g", 2, Some(70))], 7, 0, 1_000)
            .await
            .expect("txn");
        put(&log, &mut ignored, &[commit("g", 2, Some(2))]).await;
        log.append_marker(7, 0, 0, true, 1_000)
            .await
            .expect("commit");
        // p3: an open transaction; then enough plain traffic to seal and dirty segments.
        log.append_transactional(&[commit("g", 3, Some(99))], 8, 1, 1_000)
            .await
            .expect("txn");
        for round in 0..30 {
            put(&log, &mut ignored, &[commit("other", 0, Some(round))]).await;
        }
        let expected = replayed_txn(&log).await;
        assert_eq!(
            expected.0,
            vec![
                ("g".into(), 0, 1),
                ("g".into(), 1, 10),
                ("g".into(), 2, 2),
                ("other".into(), 0, 29)
            ]
        );
        assert_eq!(
            expected.1,
            vec![(8, 3, 99)],
            "the open transaction stays pending"
        );
        let bytes_before = log.log.size_bytes();
        log.clean(&cleaner_config(), None, 10_000)
            .await
            .expect("clean")
            .expect("something to clean");
        assert!(
            log.log.size_bytes() < bytes_before,
            "the plain commits were compacted"
        );
        assert_eq!(replayed_txn(&log).await, expected);
        // Past the delete horizon too, and after a reopen.
        log.clean(&cleaner_config(), None, 10_000 + DELETE_RETENTION_MS + 1)
            .await
            .expect("clean");
        assert_eq!(replayed_txn(&log).await, expected);
        log.close().await.expect("close");
        let reopened = PartitionLog::open(dir.path(), 0, 300)
            .await
            .expect("reopen");
        assert_eq!(replayed_txn(&reopened).await, expected);
        reopened.close().await.expect("close");
    });
}
