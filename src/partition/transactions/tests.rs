//! Partition-level transaction tests on a real `Log` in a temp dir: transactional appends,
//! markers, the last stable offset, the `.txnindex`, read_committed reads, recovery after a
//! simulated crash (no close) and the clean-restart snapshot.

use std::rc::Rc;

use uuid::Uuid;

use super::*;
use crate::log::{LogConfig, ABORTED_TXN_BYTES, TXN_INDEX_FILE_SUFFIX};
use crate::partition::{Appended, PartitionConfig};
use crate::protocol::record_batch::{BatchIter, Compression, RecordBatchHeader};
use crate::protocol::records::RecordBatchBuilder;

fn run<F: std::future::Future<Output = ()> + 'static>(make: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor")
        .run(make());
}

fn config(segment_bytes: u64) -> PartitionConfig {
    PartitionConfig {
        max_message_bytes: 1 << 16,
        log_append_time: false,
        cache_bytes: 1 << 20,
        log: LogConfig {
            segment_bytes,
            segment_ms: u64::MAX,
            index_interval_bytes: 256,
            segment_index_bytes: 1 << 16,
            preallocate: false,
        },
        compacted: false,
        compression: None,
        compression_gzip_level: None,
        compression_zstd_level: None,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        min_insync_replicas: 1,
    }
}

async fn open(dir: &std::path::Path, segment_bytes: u64, recover: bool) -> Rc<Partition> {
    Partition::open(
        "topic",
        0,
        Uuid::nil(),
        dir.join("topic-0"),
        config(segment_bytes),
        recover,
    )
    .await
    .expect("open")
}

/// A batch of `count` records from producer (`producer_id`, `epoch`) at `base_sequence`,
/// transactional (attribute bit 4) when `transactional`.
fn batch(producer: (i64, i16, i32), count: usize, transactional: bool) -> Vec<u8> {
    let (producer_id, epoch, base_sequence) = producer;
    let mut builder = RecordBatchBuilder::new(256);
    for i in 0..count {
        builder.append(
            Some(b"k"),
            format!("value-{i}").as_bytes(),
            1_700_000_000_000 + i as i64,
        );
    }
    let mut bytes = builder
        .finish(Compression::None, None, producer_id, epoch, base_sequence)
        .expect("encode")
        .to_vec();
    if transactional {
        let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | 0x10;
        bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    bytes
}

fn plain(count: usize) -> Vec<u8> {
    batch((-1, -1, -1), count, false)
}

fn append(partition: &Rc<Partition>, bytes: &[u8]) -> (i64, i64) {
    match partition.append(bytes, 1).expect("append") {
        Appended::New {
            base_offset,
            last_offset,
            ..
        } => (base_offset, last_offset),
        other => panic!("expected a new batch, got {other:?}"),
    }
}

/// [`append`], then waits until written: every batch gets its own write (and may roll).
async fn put(partition: &Rc<Partition>, bytes: &[u8]) -> (i64, i64) {
    let offsets = append(partition, bytes);
    partition.wait_written(offsets.1).await.expect("written");
    offsets
}

fn marker(producer_id: i64, producer_epoch: i16, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id,
        producer_epoch,
        coordinator_epoch: 0,
        commit,
    }
}

fn headers(bytes: &[u8]) -> Vec<RecordBatchHeader> {
    let mut iter = BatchIter::with_crc(bytes);
    let headers: Vec<RecordBatchHeader> = iter.by_ref().map(|(_, h)| h).collect();
    assert!(iter.error().is_none() && iter.valid_bytes() == bytes.len());
    headers
}

/// (base offset, transactional, control) of every batch read from `offset` with the isolation level.
async fn read(
    partition: &Partition,
    offset: i64,
    committed: bool,
) -> (Vec<(i64, bool, bool)>, Option<Vec<AbortedTxn>>) {
    let read = partition
        .read_isolated(offset, 1 << 20, committed)
        .await
        .expect("read");
    assert_eq!(read.last_stable_offset, partition.last_stable_offset());
    let batches = headers(&read.records)
        .iter()
        .map(|h| (h.base_offset, h.is_transactional(), h.is_control()))
        .collect();
    (batches, read.aborted_transactions)
}

fn txn_index_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("topic-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == TXN_INDEX_FILE_SUFFIX))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_ongoing_transaction_holds_the_lso_until_its_commit_is_durable() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let partition = open(dir.path(), 1 << 16, false).await;
        assert_eq!(append(&partition, &plain(2)), (0, 1));
        assert_eq!(append(&partition, &batch((7, 0, 0), 2, true)), (2, 3));
        assert_eq!(append(&partition, &plain(1)), (4, 4));
        partition.wait_durable(4).await.unwrap();
        assert!(partition.has_ongoing_transaction(7));
        assert!(!partition.has_ongoing_transaction(8));
        assert_eq!(partition.high_watermark(), 5);
        assert_eq!(partition.last_stable_offset(), 2);

        // read_committed stops before the first batch at or above the LSO; uncommitted does not.
        let (committed, aborted) = read(&partition, 0, true).await;
        assert_eq!(committed, vec![(0, false, false)]);
        assert_eq!(aborted, Some(vec![]));
        let (uncommitted, aborted) = read(&partition, 0, false).await;
        assert_eq!(uncommitted.len(), 3);
        assert_eq!(aborted, None);
        // From the LSO on, read_committed gets nothing yet.
        assert_eq!(read(&partition, 2, true).await.0, vec![]);
        assert_eq!(read(&partition, 4, true).await.0, vec![]);

        let offset = partition
            .write_txn_marker(marker(7, 0, true), 10)
            .await
            .expect("commit marker");
        assert_eq!(offset, 5);
        assert!(!partition.has_ongoing_transaction(7));
        assert_eq!(partition.high_watermark(), 6);
        assert_eq!(partition.last_stable_offset(), 6);
        let (committed, aborted) = read(&partition, 0, true).await;
        assert_eq!(
            committed,
            vec![
                (0, false, false),
                (2, true, false),
                (4, false, false),
                (5, true, true)
            ]
        );
        assert_eq!(aborted, Some(vec![]));
        // The marker is a v2 control batch with the commit key, stamped like any batch.
        let stored = partition.read(5, 1 << 20).await.unwrap().records;
        assert_eq!(
            control_record::parse_control_batch(&stored).unwrap(),
            Some((ControlRecordType::Commit, 0))
        );
        assert!(
            txn_index_files(dir.path()).is_empty(),
            "a commit is not indexed"
        );
        partition.close().await.unwrap();
    });
}

#[test]
fn an_abort_is_indexed_in_kafkas_format_and_reported_to_read_committed() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let partition = open(dir.path(), 1 << 16, false).await;
        assert_eq!(append(&partition, &batch((7, 0, 0), 2, true)), (0, 1));
        assert_eq!(append(&partition, &batch((8, 0, 0), 1, true)), (2, 2));
        let abort = partition
            .write_txn_marker(marker(7, 0, false), 10)
            .await
            .expect("abort");
        assert_eq!(abort, 3);
        // Producer 8 still holds the LSO.
        assert_eq!(partition.last_stable_offset(), 2);
        let expected = AbortedTxn {
            producer_id: 7,
            first_offset: 0,
            last_offset: 3,
            last_stable_offset: 2,
        };
        assert_eq!(partition.log().aborted_txns(), vec![expected]);
        let (committed, aborted) = read(&partition, 0, true).await;
        assert_eq!(committed, vec![(0, true, false)]);
        assert_eq!(aborted, Some(vec![expected]));

        let commit = partition
            .write_txn_marker(marker(8, 0, true), 11)
            .await
            .expect("commit");
        assert_eq!(commit, 4);
        assert_eq!(partition.last_stable_offset(), 5);
        let (committed, aborted) = read(&partition, 0, true).await;
        assert_eq!(committed.len(), 4);
        assert_eq!(aborted, Some(vec![expected]));
        // A fetch past the aborted transaction's marker does not report it.
        assert_eq!(read(&partition, 4, true).await.1, Some(vec![]));

        // Kafka's AbortedTxn bytes in the segment's .txnindex.
        let files = txn_index_files(dir.path());
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "00000000000000000000.txnindex");
        let mut want = Vec::new();
        want.extend_from_slice(&0i16.to_be_bytes());
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&0i64.to_be_bytes());
        want.extend_from_slice(&3i64.to_be_bytes());
        want.extend_from_slice(&2i64.to_be_bytes());
        assert_eq!(files[0].1, want);
        assert_eq!(want.len(), ABORTED_TXN_BYTES);

        // A clean restart keeps it all (snapshot + .txnindex).
        assert_eq!(append(&partition, &batch((9, 0, 0), 1, true)), (5, 5));
        partition.wait_written(5).await.unwrap();
        partition.close().await.unwrap();
        let partition = open(dir.path(), 1 << 16, false).await;
        assert!(partition.has_ongoing_transaction(9));
        assert_eq!(partition.last_stable_offset(), 5);
        assert_eq!(partition.log().aborted_txns(), vec![expected]);
        assert_eq!(read(&partition, 0, true).await.1, Some(vec![expected]));
        partition.close().await.unwrap();
    });
}

#[test]
fn marker_epochs_fence_and_bad_appends_are_refused() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let partition = open(dir.path(), 1 << 16, false).await;
        assert_eq!(append(&partition, &batch((7, 3, 0), 1, true)), (0, 0));
        // A non-transactional batch of a producer in a transaction: INVALID_TXN_STATE.
        assert!(matches!(
            partition.append(&batch((7, 3, 1), 1, false), 1),
            Err(AppendError::InvalidTxnState { producer_id: 7, .. })
        ));
        // Clients never write control batches (Kafka's LogValidator: INVALID_RECORD).
        let control = control_record::control_batch(7, 3, 0, true, 1);
        assert!(matches!(
            partition.append(&control, 1),
            Err(AppendError::ControlBatch { .. })
        ));
        // An older epoch's marker: INVALID_PRODUCER_EPOCH, nothing written.
        assert!(matches!(
            partition.write_txn_marker(marker(7, 2, false), 1).await,
            Err(AppendError::InvalidProducerEpoch { current: 3, .. })
        ));
        partition.wait_written(0).await.unwrap();
        assert_eq!(partition.high_watermark(), 1);
        // A newer epoch's abort (the coordinator fenced the producer) ends the transaction and
        // fences the old epoch's batches; the new epoch starts at sequence 0.
        let fence = TxnMarker {
            coordinator_epoch: 5,
            ..marker(7, 4, false)
        };
        assert_eq!(partition.write_txn_marker(fence, 1).await.unwrap(), 1);
        assert!(!partition.has_ongoing_transaction(7));
        assert!(matches!(
            partition.append(&batch((7, 3, 1), 1, true), 1),
            Err(AppendError::InvalidProducerEpoch { current: 4, .. })
        ));
        // A marker from an older coordinator epoch: TRANSACTION_COORDINATOR_FENCED.
        let zombie = TxnMarker {
            coordinator_epoch: 4,
            ..marker(7, 4, true)
        };
        assert!(matches!(
            partition.write_txn_marker(zombie, 1).await,
            Err(AppendError::TransactionCoordinatorFenced { current: 5, .. })
        ));
        assert_eq!(append(&partition, &batch((7, 4, 0), 1, true)), (2, 2));
        // A marker for a producer without a transaction here is still written, not indexed.
        assert_eq!(
            partition
                .write_txn_marker(marker(42, 0, false), 1)
                .await
                .unwrap(),
            3
        );
        assert_eq!(
            partition.log().aborted_txns(),
            vec![AbortedTxn {
                producer_id: 7,
                first_offset: 0,
                last_offset: 1,
                last_stable_offset: 2,
            }]
        );
        let described = partition.describe_producers();
        let seven = described.iter().find(|p| p.producer_id == 7).unwrap();
        assert_eq!(
            (
                seven.producer_epoch,
                seven.last_sequence,
                seven.coordinator_epoch,
                seven.current_txn_start_offset
            ),
            (4, 0, 5, 2)
        );
        assert_eq!(seven.last_timestamp, 1_700_000_000_000);
        let other = described.iter().find(|p| p.producer_id == 42).unwrap();
        assert_eq!(
            (other.coordinator_epoch, other.current_txn_start_offset),
            (0, -1)
        );
        partition.close().await.unwrap();
    });
}

#[test]
fn recovery_after_a_crash_rebuilds_ongoing_transactions_and_the_index() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            // Small segments: the transactions span several.
            let partition = open(dir.path(), 200, false).await;
            put(&partition, &plain(2)).await;
            put(&partition, &batch((7, 0, 0), 2, true)).await; // 2..3: ongoing at the crash
            put(&partition, &batch((8, 0, 0), 2, true)).await; // 4..5: aborted below
            for _ in 0..8 {
                put(&partition, &plain(3)).await;
            }
            put(&partition, &batch((8, 0, 2), 1, true)).await; // 30
            let abort = partition
                .write_txn_marker(marker(8, 0, false), 1)
                .await
                .unwrap();
            assert_eq!(abort, 31);
            put(&partition, &batch((7, 0, 2), 1, true)).await; // 32
            partition.wait_durable(32).await.unwrap();
            assert!(partition.log().segment_count() > 3);
            assert!(
                partition.log().active_segment_base_offset() <= 31,
                "the abort marker is in the active segment"
            );
            assert_eq!(partition.last_stable_offset(), 2);
            let aborted = partition.log().aborted_txns();
            assert_eq!(
                aborted,
                vec![AbortedTxn {
                    producer_id: 8,
                    first_offset: 4,
                    last_offset: 31,
                    last_stable_offset: 2,
                }]
            );
            // Crash: no close, no snapshot. The index entry of the active segment is lost too
            // (as if the process died between the marker's write and its index entry).
            for (name, _) in txn_index_files(dir.path()) {
                std::fs::remove_file(dir.path().join("topic-0").join(name)).unwrap();
            }
            aborted
        };
        let partition = open(dir.path(), 200, true).await;
        assert_eq!(partition.high_watermark(), 33);
        assert!(partition.has_ongoing_transaction(7));
        assert!(!partition.has_ongoing_transaction(8));
        assert_eq!(partition.last_stable_offset(), 2);
        assert_eq!(partition.log().aborted_txns(), expected);
        assert_eq!(
            txn_index_files(dir.path()).len(),
            1,
            "rewritten by recovery"
        );
        assert_eq!(read(&partition, 0, true).await.0, vec![(0, false, false)]);
        // The rebuilt state goes on as before: the commit of 7 releases everything.
        let commit = partition
            .write_txn_marker(marker(7, 0, true), 1)
            .await
            .unwrap();
        assert_eq!(commit, 33);
        assert_eq!(partition.last_stable_offset(), 34);
        let mut offset = 0;
        let mut aborted_seen = Vec::new();
        loop {
            let read = partition.read_isolated(offset, 200, true).await.unwrap();
            let Some(last) = headers(&read.records).last().copied() else {
                break;
            };
            aborted_seen.extend(read.aborted_transactions.unwrap());
            offset = last.next_offset();
        }
        assert_eq!(offset, 34);
        aborted_seen.dedup();
        assert_eq!(aborted_seen, expected);
        partition.close().await.unwrap();
    });
}

#[test]
fn rebuild_finds_a_transaction_started_segments_before_the_end() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let partition = open(dir.path(), 150, false).await;
        // Producer 7: a committed transaction, then one whose first batch (sequence 2) lies
        // several segments before the end.
        put(&partition, &batch((7, 0, 0), 2, true)).await; // 0..1
        partition
            .write_txn_marker(marker(7, 0, true), 1)
            .await
            .unwrap(); // 2
        put(&partition, &batch((7, 0, 2), 1, true)).await; // 3
        for _ in 0..10 {
            put(&partition, &plain(2)).await;
        }
        partition.wait_durable(22).await.unwrap();
        let segments = partition.log().segment_count();
        assert!(segments > 4, "{segments} segments");
        // min_batches 1: producer state from the newest segment only, the transaction found anyway.
        let (producers, state, aborted) =
            rebuild_from_log(partition.log(), 1, partition.log().log_end_offset(), 0)
                .await
                .unwrap();
        assert_eq!(state.ongoing.get(&7), Some(&3));
        assert_eq!(state.coordinator_epochs.get(&7), Some(&0));
        assert!(aborted.is_empty());
        assert_eq!(producers.get(&7).map(|p| p.last_sequence), Some(2));
        partition.close().await.unwrap();
    });
}

#[test]
fn retention_deletes_a_segments_txnindex() {
    run(|| async {
        let dir = tempfile::tempdir().unwrap();
        let partition = open(dir.path(), 300, false).await;
        put(&partition, &batch((7, 0, 0), 1, true)).await;
        partition
            .write_txn_marker(marker(7, 0, false), 1)
            .await
            .unwrap();
        for _ in 0..10 {
            put(&partition, &plain(2)).await;
        }
        partition.wait_durable(21).await.unwrap();
        assert_eq!(txn_index_files(dir.path()).len(), 1);
        let deleted = partition.apply_retention(-1, 400).await.unwrap();
        assert!(deleted > 0);
        assert!(txn_index_files(dir.path()).is_empty());
        assert!(partition.log().aborted_txns().is_empty());
        partition.close().await.unwrap();
    });
}

#[test]
fn snapshots_without_transactions_still_load() {
    // The snapshot format of the release before transactions.
    let old = r#"{"producers":[[9,{"epoch":2,"last_sequence":4,"recent":[]}]]}"#;
    let snapshot: crate::partition::ProducerSnapshot = serde_json::from_str(old).unwrap();
    assert!(snapshot.is_plausible());
    let state = TransactionState::from_snapshot(snapshot.transactions, 0, 10);
    assert!(state.ongoing.is_empty() && state.first_undecided_offset().is_none());
    assert_eq!(snapshot.producers[0].1.last_timestamp, -1);
}
