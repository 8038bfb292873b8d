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
