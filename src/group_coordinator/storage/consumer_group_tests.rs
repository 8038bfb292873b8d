//! KIP-848 consumer group records in a `__consumer_offsets` log: appended, replayed, and
//! compacted by key (record type + group + member/regex) like the classic records; tombstones
//! of removed members and of the deleted group go past `delete.retention.ms`.

use std::collections::BTreeMap;

use super::*;
use crate::group_coordinator::records::{
    ConsumerGroupCurrentMemberAssignmentValue, ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataValue, ConsumerGroupRegularExpressionValue, TopicPartitions,
};

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

fn group_epoch(group: &str, epoch: Option<i32>) -> CoordinatorRecord {
    CoordinatorRecord::ConsumerGroupMetadata {
        group: group.into(),
        value: epoch.map(|epoch| ConsumerGroupMetadataValue {
            epoch,
            metadata_hash: epoch as i64 * 31,
        }),
    }
}

fn member(group: &str, member_id: &str, client: Option<&str>) -> CoordinatorRecord {
    CoordinatorRecord::ConsumerGroupMemberMetadata {
        group: group.into(),
        member_id: member_id.into(),
        value: client.map(|client| ConsumerGroupMemberMetadataValue {
            client_id: client.into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["t".into()],
            rebalance_timeout_ms: 300_000,
            ..Default::default()
        }),
    }
}

fn assignment(group: &str, member_id: &str, epoch: Option<i32>) -> CoordinatorRecord {
    CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
        group: group.into(),
        member_id: member_id.into(),
        value: epoch.map(|epoch| ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: epoch,
            previous_member_epoch: epoch - 1,
            state: 0,
            assigned_partitions: vec![TopicPartitions {
                topic_id: uuid::Uuid::from_u128(7),
                partitions: vec![epoch % 3],
            }],
            partitions_pending_revocation: vec![],
        }),
    }
}

fn regex(group: &str, present: bool) -> CoordinatorRecord {
    CoordinatorRecord::ConsumerGroupRegularExpression {
        group: group.into(),
        regex: "t.*".into(),
        value: present.then(|| ConsumerGroupRegularExpressionValue {
            topics: vec!["t".into()],
            version: 3,
            timestamp: 5,
        }),
    }
}

/// The last record of each key, tombstones included (`None`).
fn last_by_key(records: &[CoordinatorRecord]) -> BTreeMap<Vec<u8>, Option<CoordinatorRecord>> {
    let mut out = BTreeMap::new();
    for record in records {
        let key = record.encode_key().expect("key").to_vec();
        out.insert(key, (!record.is_tombstone()).then(|| record.clone()));
    }
    out
}

/// The live records (last value of each key that is not a tombstone).
fn live(records: &[CoordinatorRecord]) -> Vec<CoordinatorRecord> {
    last_by_key(records).into_values().flatten().collect()
}

#[test]
fn consumer_group_records_compact_and_replay() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), 0, 300).await.expect("open");
        let mut written = Vec::new();
        for epoch in 1..30 {
            let batch = [
                member("g", "m1", Some(&format!("client-{epoch}"))),
                group_epoch("g", Some(epoch)),
                assignment("g", "m1", Some(epoch)),
                member("gone", "x", Some("x")),
                group_epoch("gone", Some(epoch)),
            ];
            log.append(&batch, 1_000).await.expect("append");
            written.extend(batch);
        }
        let more = [
            member("g", "m2", Some("second")),
            assignment("g", "m2", Some(29)),
            regex("g", true),
        ];
        log.append(&more, 1_000).await.expect("append");
        written.extend(more);
        // Member m2 leaves; group `gone` is deleted (its member first, then the group).
        let removals = [
            assignment("g", "m2", None),
            member("g", "m2", None),
            member("gone", "x", None),
            group_epoch("gone", None),
        ];
        log.append(&removals, 1_000).await.expect("append");
        written.extend(removals);
        // Seal the segment holding the tombstones: the cleaner never cleans the active segment
        // (Kafka's neither), and the delete horizon is set when a tombstone is first cleaned.
        for epoch in 100..106 {
            let batch = [group_epoch("g", Some(epoch))];
            log.append(&batch, 1_000).await.expect("append");
            written.extend(batch);
        }
        log.flush().await.expect("flush");

        let expected = live(&written);
        assert_eq!(
            expected.len(),
            4,
            "g: member m1, epoch, m1's assignment, regex"
        );
        assert_eq!(live(&log.read_all().await.expect("read")), expected);

        let first = log
            .clean(&cleaner_config(), None, 10_000)
            .await
            .expect("clean")
            .expect("something to clean");
        let after_first = log.read_all().await.expect("read");
        assert!(after_first.len() < written.len(), "compacted by key");
        assert_eq!(
            after_first.iter().filter(|r| r.is_tombstone()).count(),
            4,
            "tombstones stay until delete.retention.ms"
        );
        assert_eq!(live(&after_first), expected);

        // Dirty the log again, then clean past the delete horizon: the tombstones go.
        for epoch in 30..40 {
            let batch = [group_epoch("g", Some(epoch))];
            log.append(&batch, 1_000).await.expect("append");
            written.extend(batch);
        }
        log.flush().await.expect("flush");
        let expected = live(&written);
        log.clean(
            &cleaner_config(),
            Some(first.first_dirty_offset),
            10_000 + DELETE_RETENTION_MS + 1,
        )
        .await
        .expect("clean")
        .expect("something to clean");
        let after_second = log.read_all().await.expect("read");
        assert_eq!(
            after_second.iter().filter(|r| r.is_tombstone()).count(),
            0,
            "tombstones removed past the horizon"
        );
        assert_eq!(live(&after_second), expected);

        log.close().await.expect("close");
        let reopened = PartitionLog::open(dir.path(), 0, 300)
            .await
            .expect("reopen");
        assert_eq!(live(&reopened.read_all().await.expect("read")), expected);
        reopened.close().await.expect("close");
    });
}
