//! Every transition and error of the sans-io transaction state machine.

use super::*;

const T0: i64 = 1_000_000;

fn loaded() -> CoordinatorState {
    let mut state = CoordinatorState::new(TransactionSettings::default());
    state.set_loaded(true);
    state
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    (topic.to_string(), partition)
}

/// Runs an InitProducerId to its durable end (giving producer id `fresh` when asked).
fn init(
    state: &mut CoordinatorState,
    id: &str,
    expected: Option<(i64, i16)>,
    fresh: i64,
) -> Result<(i64, i16), ResponseError> {
    let outcome = match state.prepare_init_producer_id(id, 60_000, expected, None, T0) {
        Err(InitError::NeedProducerId) => {
            state.prepare_init_producer_id(id, 60_000, expected, Some(fresh), T0)
        }
        other => other,
    };
    match outcome {
        Ok(InitOutcome::Write(transit)) => {
            let answer = (transit.0.producer_id, transit.0.producer_epoch);
            assert_eq!(state.complete(transit), None);
            Ok(answer)
        }
        Ok(InitOutcome::FenceAndAbort(transit)) => {
            let markers = state.complete(transit).expect("abort markers");
            assert!(!markers.commit);
            let complete = state
                .prepare_complete(id, markers.producer_id, markers.producer_epoch, T0)
                .unwrap();
            state.complete(complete);
            Err(ResponseError::ConcurrentTransactions)
        }
        Err(InitError::Error(e)) => Err(e),
        Err(InitError::NeedProducerId) => panic!("asked twice"),
    }
}

fn add(
    state: &mut CoordinatorState,
    id: &str,
    pid: i64,
    epoch: i16,
    parts: &[TopicPartition],
) -> Result<(), ResponseError> {
    if let Some(transit) = state.prepare_add_partitions(id, pid, epoch, parts, T0)? {
        assert_eq!(transit.0.state, TransactionStatus::Ongoing);
        state.complete(transit);
    }
    Ok(())
}

fn end(
    state: &mut CoordinatorState,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> Result<Option<PendingMarkers>, ResponseError> {
    match state.prepare_end_transaction(id, pid, epoch, commit, T0)? {
        EndOutcome::AlreadyComplete => Ok(None),
        EndOutcome::Write(transit) => Ok(state.complete(transit)),
    }
}

fn status(state: &CoordinatorState, id: &str) -> TransactionStatus {
    state.get(id).unwrap().state
}

#[test]
fn not_loaded_answers_load_in_progress() {
    let mut state = CoordinatorState::new(TransactionSettings::default());
    assert_eq!(
        state.prepare_init_producer_id("t", 1000, None, Some(1), T0),
        Err(InitError::Error(ResponseError::CoordinatorLoadInProgress))
    );
    assert_eq!(
        state.list(&[], &[], -1, T0),
        Err(ResponseError::CoordinatorLoadInProgress)
    );
}

#[test]
fn init_checks_id_and_timeout() {
    let mut state = loaded();
    let check = |state: &mut CoordinatorState, id: &str, timeout: i32, expected| {
        assert_eq!(
            state.prepare_init_producer_id(id, timeout, None, Some(1), T0),
            Err(InitError::Error(expected)),
            "{id:?} {timeout}"
        );
    };
    check(&mut state, "", 1000, ResponseError::InvalidRequest);
    check(
        &mut state,
        "t",
        900_001,
        ResponseError::InvalidTransactionTimeout,
    );
    check(&mut state, "t", 0, ResponseError::InvalidTransactionTimeout);
    assert_eq!(
        state.prepare_init_producer_id("t", 900_000, None, None, T0),
        Err(InitError::NeedProducerId)
    );
}

#[test]
fn full_commit_and_abort_cycle() {
    let mut state = loaded();
    assert_eq!(init(&mut state, "t", None, 42), Ok((42, 0)));
    assert_eq!(status(&state, "t"), TransactionStatus::Empty);
    add(&mut state, "t", 42, 0, &[tp("a", 0), tp("b", 1)]).unwrap();
    assert_eq!(status(&state, "t"), TransactionStatus::Ongoing);
    assert_eq!(state.get("t").unwrap().start_timestamp_ms, T0);
    // Adding a subset again writes nothing.
    assert_eq!(
        state.prepare_add_partitions("t", 42, 0, &[tp("a", 0)], T0),
        Ok(None)
    );
    let markers = end(&mut state, "t", 42, 0, true).unwrap().unwrap();
    assert!(markers.commit);
    assert_eq!(markers.partitions, vec![tp("a", 0), tp("b", 1)]);
    assert_eq!(status(&state, "t"), TransactionStatus::PrepareCommit);
    // While the markers are in flight.
    assert_eq!(
        state.prepare_add_partitions("t", 42, 0, &[tp("a", 0)], T0),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(
        end(&mut state, "t", 42, 0, true),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(
        end(&mut state, "t", 42, 0, false),
        Err(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        init(&mut state, "t", None, 1),
        Err(ResponseError::ConcurrentTransactions)
    );
    let complete = state.prepare_complete("t", 42, 0, T0).unwrap();
    assert_eq!(complete.0.state, TransactionStatus::CompleteCommit);
    assert!(complete.0.partitions.is_empty());
    state.complete(complete);
    // A retried commit is fine, an abort is not.
    assert_eq!(end(&mut state, "t", 42, 0, true), Ok(None));
    assert_eq!(
        end(&mut state, "t", 42, 0, false),
        Err(ResponseError::InvalidTxnState)
    );
    // Next transaction: abort.
    add(&mut state, "t", 42, 0, &[tp("c", 0)]).unwrap();
    assert_eq!(state.get("t").unwrap().partitions.len(), 1);
    let markers = end(&mut state, "t", 42, 0, false).unwrap().unwrap();
    assert!(!markers.commit);
    assert_eq!(
        end(&mut state, "t", 42, 0, true),
        Err(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        end(&mut state, "t", 42, 0, false),
        Err(ResponseError::ConcurrentTransactions)
    );
    let complete = state.prepare_complete("t", 42, 0, T0).unwrap();
    assert_eq!(complete.0.state, TransactionStatus::CompleteAbort);
    state.complete(complete);
    assert_eq!(end(&mut state, "t", 42, 0, false), Ok(None));
    assert_eq!(
        end(&mut state, "t", 42, 0, true),
        Err(ResponseError::InvalidTxnState)
    );
}

#[test]
fn end_and_add_check_producer_id_and_epoch() {
    let mut state = loaded();
    assert_eq!(
        add(&mut state, "none", 1, 0, &[tp("a", 0)]),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(
        end(&mut state, "none", 1, 0, true),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    init(&mut state, "t", None, 7).unwrap();
    assert_eq!(
        end(&mut state, "t", 7, 0, true),
        Err(ResponseError::InvalidTxnState),
        "EndTxn in Empty"
    );
    assert_eq!(
        add(&mut state, "t", 8, 0, &[tp("a", 0)]),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(
        add(&mut state, "t", 7, 1, &[tp("a", 0)]),
        Err(ResponseError::ProducerFenced)
    );
    add(&mut state, "t", 7, 0, &[tp("a", 0)]).unwrap();
    assert_eq!(
        end(&mut state, "t", 8, 0, true),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(
        end(&mut state, "t", 7, 1, true),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        add(&mut state, "", 7, 0, &[tp("a", 0)]),
        Err(ResponseError::InvalidRequest)
    );
}

#[test]
fn pending_transition_answers_concurrent_transactions() {
    let mut state = loaded();
    init(&mut state, "t", None, 7).unwrap();
    let transit = state
        .prepare_add_partitions("t", 7, 0, &[tp("a", 0)], T0)
        .unwrap()
        .unwrap();
    assert_eq!(
        state.prepare_add_partitions("t", 7, 0, &[tp("b", 0)], T0),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(
        state.prepare_end_transaction("t", 7, 0, true, T0),
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(
        state.prepare_init_producer_id("t", 1000, None, None, T0),
        Err(InitError::Error(ResponseError::ConcurrentTransactions))
    );
    // The write failed: the state is what it was.
    state.abort_pending("t");
    assert_eq!(status(&state, "t"), TransactionStatus::Empty);
    drop(transit);
    add(&mut state, "t", 7, 0, &[tp("b", 0)]).unwrap();
    assert_eq!(
        state.get("t").unwrap().partitions,
        [tp("b", 0)].into_iter().collect()
    );
}

#[test]
fn init_bumps_epoch_and_fences_old_producers() {
    let mut state = loaded();
    assert_eq!(init(&mut state, "t", None, 7), Ok((7, 0)));
    assert_eq!(init(&mut state, "t", None, 8), Ok((7, 1)));
    // KIP-360: the producer's own id and epoch bump it.
    assert_eq!(init(&mut state, "t", Some((7, 1)), 8), Ok((7, 2)));
    // A retry of that bump (answer lost) gets the same epoch.
    assert_eq!(init(&mut state, "t", Some((7, 1)), 8), Ok((7, 2)));
    // Another producer id, or an older epoch, is fenced.
    assert_eq!(
        init(&mut state, "t", Some((99, 2)), 8),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        init(&mut state, "t", Some((7, 0)), 8),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn init_during_ongoing_fences_and_aborts() {
    let mut state = loaded();
    init(&mut state, "t", None, 7).unwrap();
    add(&mut state, "t", 7, 0, &[tp("a", 0)]).unwrap();
    let outcome = state
        .prepare_init_producer_id("t", 60_000, None, None, T0)
        .unwrap();
    let InitOutcome::FenceAndAbort(transit) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(transit.0.state, TransactionStatus::PrepareAbort);
    assert_eq!(transit.0.producer_epoch, 1, "fencing bumps the epoch");
    let markers = state.complete(transit).unwrap();
    assert_eq!((markers.producer_epoch, markers.commit), (1, false));
    // The old producer is fenced from now on.
    assert_eq!(
        end(&mut state, "t", 7, 0, true),
        Err(ResponseError::ProducerFenced)
    );
    let complete = state.prepare_complete("t", 7, 1, T0).unwrap();
    state.complete(complete);
    assert_eq!(status(&state, "t"), TransactionStatus::CompleteAbort);
    // The client's retry bumps once more.
    assert_eq!(init(&mut state, "t", None, 8), Ok((7, 2)));
}

#[test]
fn exhausted_epoch_rotates_producer_id() {
    let mut state = loaded();
    init(&mut state, "t", None, 7).unwrap();
    let mut record = state.get("t").unwrap().log_record();
    record.value.as_mut().unwrap().producer_epoch = i16::MAX - 1;
    state.replay(record);
    assert_eq!(
        state.prepare_init_producer_id("t", 1000, None, None, T0),
        Err(InitError::NeedProducerId)
    );
    // The producer's own exhausted epoch (KIP-360): a new producer id at epoch 0.
    assert_eq!(
        init(&mut state, "t", Some((7, i16::MAX - 1)), 8),
        Ok((8, 0))
    );
    assert_eq!(state.get("t").unwrap().previous_producer_id, 7);
    // Its retry (the answer was lost) names the old id and gets the same id and epoch.
    assert_eq!(
        init(&mut state, "t", Some((7, i16::MAX - 1)), 9),
        Ok((8, 0))
    );
    // Without an expected id, an exhausted epoch rotates too.
    let mut record = state.get("t").unwrap().log_record();
    record.value.as_mut().unwrap().producer_epoch = i16::MAX - 1;
    state.replay(record);
    assert_eq!(init(&mut state, "t", None, 10), Ok((10, 0)));
}

#[test]
fn timed_out_transactions_are_fenced_and_aborted() {
    let mut state = loaded();
    init(&mut state, "t", None, 7).unwrap();
    init(&mut state, "idle", None, 8).unwrap();
    add(&mut state, "t", 7, 0, &[tp("a", 0)]).unwrap();
    assert!(state.timed_out_transactions(T0 + 59_999).is_empty());
    assert_eq!(
        state.timed_out_transactions(T0 + 60_000),
        vec!["t".to_string()]
    );
    let transit = state.prepare_abort_timed_out("t", T0 + 60_000).unwrap();
    assert_eq!(
        (transit.0.state, transit.0.producer_epoch),
        (TransactionStatus::PrepareAbort, 1)
    );
    assert!(state.prepare_abort_timed_out("t", T0).is_none(), "pending");
    let markers = state.complete(transit).unwrap();
    assert_eq!(markers.partitions, vec![tp("a", 0)]);
    assert!(state.timed_out_transactions(T0 + 120_000).is_empty());
    assert_eq!(
        end(&mut state, "t", 7, 0, false),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let mut state = loaded();
    init(&mut state, "old", None, 7).unwrap();
    init(&mut state, "busy", None, 8).unwrap();
    add(&mut state, "busy", 8, 0, &[tp("a", 0)]).unwrap();
    let expiry = T0 + TransactionSettings::default().transactional_id_expiration_ms;
    assert!(state.prepare_expirations(expiry - 1).is_empty());
    let transits = state.prepare_expirations(expiry);
    assert_eq!(transits.len(), 1, "an ongoing transaction does not expire");
    assert_eq!(transits[0].0.log_record().value, None, "tombstone");
    state.complete(transits[0].clone());
    assert!(state.get("old").is_none());
    assert_eq!(
        state.describe("old"),
        Err(ResponseError::TransactionalIdNotFound)
    );
}

#[test]
fn verify_partitions_as_kafka() {
    let mut state = loaded();
    assert_eq!(
        state.verify_partitions("t", 7, 0, &[tp("a", 0)]),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    init(&mut state, "t", None, 7).unwrap();
    add(&mut state, "t", 7, 0, &[tp("a", 0)]).unwrap();
    assert_eq!(
        state.verify_partitions("t", 7, 0, &[tp("a", 0), tp("a", 1)]),
        Ok(vec![None, Some(ResponseError::TransactionAbortable)])
    );
    assert_eq!(
        state.verify_partitions("t", 7, 1, &[tp("a", 0)]),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        state.verify_partitions("t", 6, 0, &[tp("a", 0)]),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    end(&mut state, "t", 7, 0, true).unwrap();
    assert_eq!(
        state.verify_partitions("t", 7, 0, &[tp("a", 0)]),
        Err(ResponseError::ConcurrentTransactions)
    );
}

#[test]
fn replay_restores_state_and_unfinished_markers() {
    let mut state = loaded();
    init(&mut state, "t", None, 7).unwrap();
    add(&mut state, "t", 7, 0, &[tp("a", 0), tp("a", 3)]).unwrap();
    end(&mut state, "t", 7, 0, true).unwrap();
    init(&mut state, "gone", None, 9).unwrap();
    let mut records = vec![
        state.get("t").unwrap().log_record(),
        state.get("gone").unwrap().log_record(),
    ];
    records.push(TransactionLogRecord {
        transactional_id: "gone".into(),
        value: None,
    });
    let mut replayed = CoordinatorState::new(TransactionSettings::default());
    for record in records {
        replayed.replay(record);
    }
    replayed.set_loaded(true);
    assert!(replayed.get("gone").is_none());
    let pending = replayed.incomplete_transactions();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].commit);
    assert_eq!(pending[0].partitions, vec![tp("a", 0), tp("a", 3)]);
    // After a restart the transactional id keeps its producer id; the epoch bumps.
    let complete = replayed.prepare_complete("t", 7, 0, T0).unwrap();
    replayed.complete(complete);
    assert_eq!(init(&mut replayed, "t", None, 100), Ok((7, 1)));
}

#[test]
fn list_and_describe_filter_as_kafka() {
    let mut state = loaded();
    init(&mut state, "a", None, 1).unwrap();
    init(&mut state, "b", None, 2).unwrap();
    add(&mut state, "b", 2, 0, &[tp("x", 0)]).unwrap();
    let ids = |list: Vec<TransactionSummary>| {
        list.into_iter()
            .map(|s| s.transactional_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(state.list(&[], &[], -1, T0).unwrap()), ["a", "b"]);
    assert_eq!(ids(state.list(&[2], &[], -1, T0).unwrap()), ["b"]);
    assert_eq!(
        ids(state
            .list(&[], &[TransactionStatus::Empty], -1, T0)
            .unwrap()),
        ["a"]
    );
    // Kafka compares with the start timestamp, -1 for an id without a transaction.
    assert_eq!(ids(state.list(&[], &[], 10, T0 + 11).unwrap()), ["a", "b"]);
    assert_eq!(ids(state.list(&[], &[], 10, T0 + 10).unwrap()), ["a"]);
    let b = state.describe("b").unwrap();
    assert_eq!(
        (b.state, b.partitions, b.start_timestamp_ms),
        (TransactionStatus::Ongoing, vec![tp("x", 0)], T0)
    );
    assert_eq!(state.describe(""), Err(ResponseError::InvalidRequest));
}
