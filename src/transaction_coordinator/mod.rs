//! Transactions (KIP-98): the transaction coordinator, one per shard like the group coordinator.
//!
//! A transactional id is coordinated by the shard owning its `__transaction_state` partition:
//! partition = `abs(java_hash(transactional_id)) % transaction.state.log.num.partitions`
//! (Kafka's `TransactionStateManager.partitionFor`), and partition p belongs to shard
//! `p % shard_count`. [`TransactionCoordinator`] is the async face over the sans-io
//! [`state::CoordinatorState`]: every transition's record is appended to the shard's
//! `__transaction_state-<p>` log and fsynced before the state changes and the client is answered
//! (Kafka's `appendTransactionToLog` with acks=-1). After PrepareCommit/PrepareAbort the
//! coordinator writes the commit/abort markers to every partition of the transaction through
//! [`TxnServices::write_marker`] (the shard mesh: Kafka's WriteTxnMarkers without a network hop),
//! and writes CompleteCommit/CompleteAbort once every marker is durable. A timer task aborts
//! transactions older than their timeout, expires idle transactional ids, and restarts the
//! markers of transactions left in PrepareCommit/PrepareAbort (after a load or a failure).
//!
//! The coordinator does not reach other shards itself (the module graph keeps `shard` above it):
//! the server hands it [`TxnServices`], closures that route markers and allocate producer ids.
//!
//! Invariants: only this shard touches its transactional ids and its `__transaction_state`
//! partitions; the in-memory state of an id changes only after its record is durable; an id
//! has at most one transition in flight (others get CONCURRENT_TRANSACTIONS).

pub mod state;
mod storage;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use kafka_protocol::error::ResponseError;

pub use ringtail_protocol::transaction_state::TransactionStatus;
use state::{
    CoordinatorState, EndOutcome, InitError, InitOutcome, PendingMarkers, TopicPartition,
    TransactionSummary, Transit,
};
pub use state::{TransactionSettings, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
pub use storage::{TxnStoreError, TRANSACTION_STATE_SEGMENT_BYTES};

/// Kafka's internal topic for transaction state.
pub const TRANSACTION_STATE_TOPIC_NAME: &str = "__transaction_state";
/// How often the timer task wakes, in ms; the cleanup intervals are checked at each wake.
pub const TRANSACTION_TICK_INTERVAL_MS: u64 = 100;
/// Pause before a marker write that failed is tried again, in ms (Kafka's marker channel
/// retries with `retry.backoff.ms`, 100).
pub const MARKER_RETRY_BACKOFF_MS: u64 = 100;

/// The `__transaction_state` partition of a transactional id (Kafka's `partitionFor`, with
/// `Utils.abs` mapping `i32::MIN` to 0). `num_partitions` must be positive.
pub fn transaction_partition_for(transactional_id: &str, num_partitions: i32) -> i32 {
    assert!(
        num_partitions > 0,
        "transaction.state.log.num.partitions must be positive"
    );
    let hash = crate::group_coordinator::java_string_hashcode(transactional_id);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % num_partitions
}

/// The shard coordinating a transactional id: the owner of its `__transaction_state` partition.
pub fn shard_for_transactional_id(id: &str, num_partitions: i32, shard_count: usize) -> usize {
    assert!(shard_count > 0, "shard_count must be positive");
    transaction_partition_for(id, num_partitions) as usize % shard_count
}

/// The `__transaction_state` partitions shard `shard_id` owns.
pub fn owned_transaction_partitions(
    shard_id: usize,
    shard_count: usize,
    num_partitions: i32,
) -> Vec<i32> {
    (0..num_partitions)
        .filter(|p| *p as usize % shard_count == shard_id)
        .collect()
}

/// How the coordinator keeps its `__transaction_state` logs: Kafka creates the topic with
/// `cleanup.policy=compact` and `segment.bytes=transaction.state.log.segment.bytes`
/// (`TransactionStateManager.transactionTopicConfigs`); the cleaner settings are the broker's.
#[derive(Clone, Debug, PartialEq)]
pub struct TransactionLogSettings {
    /// `transaction.state.log.segment.bytes` (104857600).
    pub segment_bytes: u64,
    /// The broker's cleaner settings; `None` when `log.cleaner.enable=false`.
    pub cleaner: Option<crate::log::CleanerConfig>,
    /// `log.cleaner.backoff.ms` (15000).
    pub cleaner_backoff_ms: u64,
    /// `transaction.state.log.load.buffer.size`: bytes per read while loading (5242880).
    pub load_buffer_bytes: usize,
}

impl Default for TransactionLogSettings {
    fn default() -> TransactionLogSettings {
        TransactionLogSettings {
            segment_bytes: TRANSACTION_STATE_SEGMENT_BYTES,
            cleaner: None,
            cleaner_backoff_ms: 15_000,
            load_buffer_bytes: 5 * 1024 * 1024,
        }
    }
}

/// One commit/abort marker to write to one partition (Kafka's `WriteTxnMarkers` entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerRequest {
    pub topic: String,
    pub partition: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The coordinator's epoch (Kafka: the leader epoch of the `__transaction_state`
    /// partition); here the broker start time in seconds, so it grows with every start.
    pub coordinator_epoch: i32,
    pub commit: bool,
}

/// Writes one marker on the partition's owner shard; Ok once durable. UNKNOWN_TOPIC_OR_PARTITION
/// means the partition is gone (the marker is dropped, as Kafka's marker channel does).
pub type WriteMarkerFn =
    Rc<dyn Fn(MarkerRequest) -> LocalBoxFuture<'static, Result<(), ResponseError>>>;
/// Allocates a producer id no other producer had (`ShardContext::allocate_producer_id`).
pub type AllocateProducerIdFn = Rc<dyn Fn() -> LocalBoxFuture<'static, i64>>;

/// What the coordinator needs from the shard mesh, given by the server before [`TransactionCoordinator::load`].
#[derive(Clone)]
pub struct TxnServices {
    pub write_marker: WriteMarkerFn,
    pub allocate_producer_id: AllocateProducerIdFn,
}

/// One shard's transaction coordinator. Cheap to share within the shard; never crosses threads.
pub struct TransactionCoordinator {
    inner: Rc<Inner>,
}

struct Inner {
    shard_id: usize,
    shard_count: usize,
    log_dir: PathBuf,
    log_settings: TransactionLogSettings,
    coordinator_epoch: i32,
    state: RefCell<CoordinatorState>,
    logs: RefCell<Rc<BTreeMap<i32, Rc<storage::TransactionLog>>>>,
    services: RefCell<Option<TxnServices>>,
    /// Transactional ids whose markers are being written.
    markers_in_flight: RefCell<BTreeSet<String>>,
    stopping: Cell<bool>,
    tasks: RefCell<Vec<glommio::task::JoinHandle<()>>>,
    cleaner_done: RefCell<Option<futures::channel::oneshot::Receiver<()>>>,
}

impl TransactionCoordinator {
    /// A coordinator for the transactional ids of `shard_id`; serving after [`Self::load`].
    pub fn new(
        shard_id: usize,
        shard_count: usize,
        settings: TransactionSettings,
        log_dir: PathBuf,
        log_settings: TransactionLogSettings,
        coordinator_epoch: i32,
    ) -> TransactionCoordinator {
        TransactionCoordinator {
            inner: Rc::new(Inner {
                shard_id,
                shard_count,
                log_dir,
                log_settings,
                coordinator_epoch,
                state: RefCell::new(CoordinatorState::new(settings)),
                logs: RefCell::new(Rc::new(BTreeMap::new())),
                services: RefCell::new(None),
                markers_in_flight: RefCell::new(BTreeSet::new()),
                stopping: Cell::new(false),
                tasks: RefCell::new(Vec::new()),
                cleaner_done: RefCell::new(None),
            }),
        }
    }

    /// The shard that coordinates `transactional_id`.
    pub fn shard_for(&self, transactional_id: &str) -> usize {
        shard_for_transactional_id(
            transactional_id,
            self.num_partitions(),
            self.inner.shard_count,
        )
    }

    fn num_partitions(&self) -> i32 {
        self.inner
            .state
            .borrow()
            .settings()
            .transaction_state_log_num_partitions
    }

    /// Installs the mesh services; must be called before [`Self::load`].
    pub fn set_services(&self, services: TxnServices) {
        *self.inner.services.borrow_mut() = Some(services);
    }

    /// Opens and replays this shard's `__transaction_state-<p>` logs, then serves and starts
    /// the timer task (which also finishes the markers of transactions loaded in
    /// PrepareCommit/PrepareAbort) and the cleaner task.
    pub async fn load(&self) -> Result<(), TxnStoreError> {
        let partitions = owned_transaction_partitions(
            self.inner.shard_id,
            self.inner.shard_count,
            self.num_partitions(),
        );
        let mut logs = BTreeMap::new();
        let mut replayed = 0usize;
        for partition in partitions {
            let log = storage::TransactionLog::open(
                &self.inner.log_dir,
                partition,
                self.inner.log_settings.segment_bytes,
            )
            .await?;
            let records = log
                .read_all(self.inner.log_settings.load_buffer_bytes)
                .await?;
            replayed += records.len();
            let mut state = self.inner.state.borrow_mut();
            for record in records {
                state.replay(record);
            }
            drop(state);
            logs.insert(partition, Rc::new(log));
        }
        *self.inner.logs.borrow_mut() = Rc::new(logs);
        self.inner.state.borrow_mut().set_loaded(true);
        let incomplete = self.inner.state.borrow().incomplete_transactions().len();
        tracing::info!(
            shard = self.inner.shard_id,
            records = replayed,
            incomplete,
            "transaction coordinator loaded"
        );
        let (cleaner_sender, cleaner_receiver) = futures::channel::oneshot::channel();
        *self.inner.cleaner_done.borrow_mut() = Some(cleaner_receiver);
        let cleaner =
            glommio::spawn_local(cleaner_task(self.inner.clone(), cleaner_sender)).detach();
        let timer = glommio::spawn_local(timer_task(self.inner.clone())).detach();
        self.inner.tasks.borrow_mut().extend([timer, cleaner]);
        Ok(())
    }

    /// Stops the tasks and closes the logs. A transaction whose markers are still being written
    /// stays PrepareCommit/PrepareAbort in the log; the next start finishes it.
    pub async fn shutdown(&self) {
        self.inner.stopping.set(true);
        let cleaner_done = self.inner.cleaner_done.borrow_mut().take();
        if let Some(cleaner_done) = cleaner_done {
            let _ = cleaner_done.await;
        }
        self.inner.state.borrow_mut().set_loaded(false);
        for task in self.inner.tasks.borrow_mut().drain(..) {
            task.cancel();
        }
        let logs = self.inner.logs.borrow().clone();
        for (partition, log) in logs.iter() {
            if let Err(error) = log.close().await {
                tracing::error!(partition, %error, "closing __transaction_state log failed");
            }
        }
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use, once durable.
    /// `expected` is the client's current id and epoch (KIP-360), `None` when both are -1.
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        transaction_timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        let mut fresh = None;
        loop {
            let outcome = self.inner.state.borrow_mut().prepare_init_producer_id(
                transactional_id,
                transaction_timeout_ms,
                expected,
                fresh,
                now_ms(),
            );
            match outcome {
                Err(InitError::NeedProducerId) => {
                    fresh = Some(self.inner.allocate_producer_id().await?);
                }
                Err(InitError::Error(error)) => return Err(error),
                Ok(InitOutcome::Write(transit)) => {
                    let answer = (transit.0.producer_id, transit.0.producer_epoch);
                    self.inner.write_transit(transit).await?;
                    tracing::info!(
                        transactional_id,
                        producer_id = answer.0,
                        producer_epoch = answer.1,
                        "initialized transactional id"
                    );
                    return Ok(answer);
                }
                Ok(InitOutcome::FenceAndAbort(transit)) => {
                    self.inner.write_transit(transit).await?;
                    return Err(ResponseError::ConcurrentTransactions);
                }
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's `__consumer_offsets`
    /// partition): one error for all `partitions`, as Kafka's coordinator answers.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<(), ResponseError> {
        let transit = self.inner.state.borrow_mut().prepare_add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            now_ms(),
        )?;
        match transit {
            Some(transit) => self.inner.write_transit(transit).await,
            None => Ok(()),
        }
    }

    /// The verify-only AddPartitionsToTxn (v4+): per partition `None` if it is in the
    /// transaction, TRANSACTION_ABORTABLE if not; `Err` for all of them.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        self.inner.state.borrow().verify_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
        )
    }

    /// The produce-path check (KIP-890 part 1) for one partition, with the errors a Produce
    /// response carries (Kafka's `AddPartitionsToTxnManager`): not in the transaction ->
    /// INVALID_TXN_STATE, PRODUCER_FENCED -> INVALID_PRODUCER_EPOCH, unknown id ->
    /// INVALID_PRODUCER_ID_MAPPING, coordinator busy or loading -> NOT_ENOUGH_REPLICAS (retriable).
    pub fn verify_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        let result = self.verify_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            &[(topic.to_string(), partition)],
        );
        let error = match result {
            Ok(errors) => match errors.first() {
                Some(None) => return Ok(()),
                _ => ResponseError::InvalidTxnState,
            },
            Err(error) => error,
        };
        Err(match error {
            ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
            ResponseError::TransactionAbortable => ResponseError::InvalidTxnState,
            ResponseError::ConcurrentTransactions
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::NotCoordinator => ResponseError::NotEnoughReplicas,
            other => other,
        })
    }

    /// EndTxn: answered once PrepareCommit/PrepareAbort is durable; the markers follow.
    pub async fn end_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), ResponseError> {
        let outcome = self.inner.state.borrow_mut().prepare_end_transaction(
            transactional_id,
            producer_id,
            producer_epoch,
            commit,
            now_ms(),
        )?;
        match outcome {
            EndOutcome::AlreadyComplete => Ok(()),
            EndOutcome::Write(transit) => self.inner.write_transit(transit).await,
        }
    }

    /// DescribeTransactions for one id of this shard.
    pub fn describe(&self, transactional_id: &str) -> Result<TransactionSummary, ResponseError> {
        self.inner.state.borrow().describe(transactional_id)
    }

    /// ListTransactions over this shard's ids (the request handler merges the shards).
    pub fn list(
        &self,
        producer_ids: &[i64],
        states: &[TransactionStatus],
        min_duration_ms: i64,
    ) -> Result<Vec<TransactionSummary>, ResponseError> {
        self.inner
            .state
            .borrow()
            .list(producer_ids, states, min_duration_ms, now_ms())
    }
}

impl Inner {
    async fn allocate_producer_id(&self) -> Result<i64, ResponseError> {
        let allocate = self
            .services
            .borrow()
            .as_ref()
            .map(|s| s.allocate_producer_id.clone())
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        Ok(allocate().await)
    }

    /// Makes `transit` durable in its `__transaction_state` partition, then applies it; a
    /// PrepareCommit/PrepareAbort starts its markers. A failed write leaves the state as it was.
    fn write_transit(
        self: &Rc<Self>,
        transit: Transit,
    ) -> LocalBoxFuture<'static, Result<(), ResponseError>> {
        let inner = self.clone();
        Box::pin(async move {
            let id = transit.0.transactional_id.clone();
            let partition = transaction_partition_for(
                &id,
                inner
                    .state
                    .borrow()
                    .settings()
                    .transaction_state_log_num_partitions,
            );
            let log = inner.logs.borrow().get(&partition).cloned();
            let Some(log) = log else {
                inner.state.borrow_mut().abort_pending(&id);
                return Err(ResponseError::NotCoordinator);
            };
            let record = transit.0.log_record();
            if let Err(error) = log.append_durable(&[record], now_ms()).await {
                tracing::warn!(transactional_id = %id, %error, "__transaction_state append failed");
                inner.state.borrow_mut().abort_pending(&id);
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            let markers = inner.state.borrow_mut().complete(transit);
            if let Some(markers) = markers {
                inner.start_markers(markers);
            }
            Ok(())
        })
    }

    /// Spawns the marker writes of one transaction unless they are already running.
    fn start_markers(self: &Rc<Self>, markers: PendingMarkers) {
        if self.stopping.get()
            || !self
                .markers_in_flight
                .borrow_mut()
                .insert(markers.transactional_id.clone())
        {
            return;
        }
        glommio::spawn_local(send_markers(self.clone(), markers)).detach();
    }
}

/// Writes the markers of one transaction to every partition (in parallel, each retried until
/// it is durable or its partition is gone), then completes the transaction.
async fn send_markers(inner: Rc<Inner>, markers: PendingMarkers) {
    let write_marker = inner
        .services
        .borrow()
        .as_ref()
        .map(|s| s.write_marker.clone());
    let id = markers.transactional_id.clone();
    let Some(write_marker) = write_marker else {
        inner.markers_in_flight.borrow_mut().remove(&id);
        return;
    };
    let writes = markers.partitions.iter().map(|(topic, partition)| {
        let request = MarkerRequest {
            topic: topic.clone(),
            partition: *partition,
            producer_id: markers.producer_id,
            producer_epoch: markers.producer_epoch,
            coordinator_epoch: inner.coordinator_epoch,
            commit: markers.commit,
        };
        let write_marker = write_marker.clone();
        let inner = inner.clone();
        async move {
            loop {
                match write_marker(request.clone()).await {
                    Ok(()) => return true,
                    Err(ResponseError::UnknownTopicOrPartition) => {
                        tracing::warn!(topic = %request.topic, partition = request.partition, "dropping a transaction marker for a partition that no longer exists");
                        return true;
                    }
                    Err(error) => {
                        tracing::debug!(topic = %request.topic, partition = request.partition, %error, "transaction marker not written, retrying");
                    }
                }
                if inner.stopping.get() {
                    return false;
                }
                glommio::timer::sleep(Duration::from_millis(MARKER_RETRY_BACKOFF_MS)).await;
            }
        }
    });
    let written = futures::future::join_all(writes).await;
    if written.iter().all(|w| *w) && !inner.stopping.get() {
        let complete = inner.state.borrow_mut().prepare_complete(
            &id,
            markers.producer_id,
            markers.producer_epoch,
            now_ms(),
        );
        if let Some(complete) = complete {
            if let Err(error) = inner.write_transit(complete).await {
                tracing::warn!(transactional_id = %id, %error, "completing the transaction failed; retried by the timer");
            }
        }
    }
    inner.markers_in_flight.borrow_mut().remove(&id);
}

/// Every tick: restarts the markers of PrepareCommit/PrepareAbort transactions not being
/// written; every `transaction.abort.timed.out.transaction.cleanup.interval.ms` aborts the timed
/// out transactions; every `transaction.remove.expired.transaction.cleanup.interval.ms` expires
/// idle transactional ids (Kafka's "transaction-abort" and "transactionalId-expiration" tasks).
async fn timer_task(inner: Rc<Inner>) {
    let settings = inner.state.borrow().settings().clone();
    let mut next_abort = now_ms() + settings.abort_timed_out_transaction_cleanup_interval_ms;
    let mut next_expiration = now_ms() + settings.remove_expired_transaction_cleanup_interval_ms;
    while !inner.stopping.get() {
        let incomplete = inner.state.borrow().incomplete_transactions();
        for markers in incomplete {
            inner.start_markers(markers);
        }
        let now = now_ms();
        if now >= next_abort {
            next_abort = now + settings.abort_timed_out_transaction_cleanup_interval_ms;
            let timed_out = inner.state.borrow().timed_out_transactions(now);
            for id in timed_out {
                let transit = inner.state.borrow_mut().prepare_abort_timed_out(&id, now);
                if let Some(transit) = transit {
                    tracing::info!(transactional_id = %id, "aborting a transaction past its transaction.timeout.ms");
                    if let Err(error) = inner.write_transit(transit).await {
                        tracing::warn!(transactional_id = %id, %error, "aborting a timed out transaction failed");
                    }
                }
            }
        }
        if now >= next_expiration {
            next_expiration = now + settings.remove_expired_transaction_cleanup_interval_ms;
            let expired = inner.state.borrow_mut().prepare_expirations(now);
            for transit in expired {
                let id = transit.0.transactional_id.clone();
                match inner.write_transit(transit).await {
                    Ok(()) => {
                        tracing::info!(transactional_id = %id, "expired an idle transactional id")
                    }
                    Err(error) => {
                        tracing::warn!(transactional_id = %id, %error, "expiring a transactional id failed")
                    }
                }
            }
        }
        glommio::timer::sleep(Duration::from_millis(TRANSACTION_TICK_INTERVAL_MS)).await;
    }
}

/// Log-cleaner passes over this shard's `__transaction_state` logs, as the group coordinator's
/// cleaner task does for `__consumer_offsets` (checkpointed as `__transaction_state <p>`).
async fn cleaner_task(inner: Rc<Inner>, done: futures::channel::oneshot::Sender<()>) {
    if let Some(config) = inner.log_settings.cleaner.clone() {
        let backoff = Duration::from_millis(inner.log_settings.cleaner_backoff_ms.max(1));
        let tick = Duration::from_millis(TRANSACTION_TICK_INTERVAL_MS);
        while !inner.stopping.get() {
            if clean_logs(&inner, &config).await > 0 {
                glommio::yield_if_needed().await;
                continue;
            }
            let wake = std::time::Instant::now() + backoff;
            while !inner.stopping.get() && std::time::Instant::now() < wake {
                let left = wake.saturating_duration_since(std::time::Instant::now());
                glommio::timer::sleep(left.min(tick)).await;
            }
        }
    }
    let _ = done.send(());
}

/// One cleaner round; returns the partitions cleaned.
async fn clean_logs(inner: &Inner, config: &crate::log::CleanerConfig) -> usize {
    let checkpoint = match crate::log::read_cleaner_checkpoint(&inner.log_dir) {
        Ok(checkpoint) => checkpoint,
        Err(error) => {
            tracing::warn!(%error, "reading the cleaner checkpoint failed");
            Default::default()
        }
    };
    let logs = inner.logs.borrow().clone();
    let mut cleaned = 0;
    for (&partition, log) in logs.iter() {
        if inner.stopping.get() {
            break;
        }
        let key = (TRANSACTION_STATE_TOPIC_NAME.to_string(), partition);
        match log
            .clean(config, checkpoint.get(&key).copied(), now_ms())
            .await
        {
            Ok(None) => {}
            Ok(Some(summary)) => {
                cleaned += 1;
                tracing::info!(
                    topic = TRANSACTION_STATE_TOPIC_NAME,
                    partition,
                    segments = summary.segments_cleaned,
                    bytes_before = summary.bytes_before,
                    bytes_after = summary.bytes_after,
                    first_dirty_offset = summary.first_dirty_offset,
                    "cleaned log"
                );
                let update = [(key, Some(summary.first_dirty_offset))];
                if let Err(error) = crate::log::write_cleaner_checkpoint(&inner.log_dir, &update) {
                    tracing::warn!(%error, "writing the cleaner checkpoint failed");
                }
            }
            Err(error) => tracing::warn!(partition, %error, "cleaning __transaction_state failed"),
        }
        glommio::yield_if_needed().await;
    }
    cleaned
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    crate::group_coordinator::now_ms()
}
