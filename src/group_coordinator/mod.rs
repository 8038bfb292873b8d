//! Consumer groups and committed offsets: the classic group protocol, one coordinator per shard.
//!
//! A group is coordinated by the shard that owns its `__consumer_offsets` partition:
//! partition = `abs(java_hash(group_id)) % offsets.topic.num.partitions` (Kafka's
//! `GroupMetadataManager.partitionFor`), and partition p belongs to shard `p % shard_count`.
//! [`GroupCoordinator`] is the async face: it turns Kafka requests into calls on the sans-io
//! [`coordinator_state::CoordinatorState`], waits for rebalances through `oneshot` receivers,
//! runs a timer task for session/rebalance deadlines (glommio timers), and a writer task that
//! appends group metadata and offset commits to the shard's `__consumer_offsets-<p>` logs
//! (Kafka's key/value schemas, see [`records`]). An OffsetCommit is answered only once its
//! records are flushed. On [`GroupCoordinator::load`] the logs are replayed; until then every
//! group request gets COORDINATOR_LOAD_IN_PROGRESS. A log holding at least
//! [`COMPACTION_MIN_RECORDS`] records and more than [`COMPACTION_RATIO`] times its live state is
//! rewritten to the live state, at load and whenever the writer is idle.
//!
//! Invariants: only this shard touches its groups and its `__consumer_offsets` partitions;
//! records reach the log in the order the state changed (one writer task, one queue).

pub mod consumer_group;
pub mod coordinator_state;
pub mod group;
/// The `__consumer_offsets` record schemas (crate `ringtail-protocol`).
pub use ringtail_protocol::consumer_offsets as records;
mod responses;
mod storage;
mod txn_offset_commit;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};

use coordinator_state::{CoordinatorState, JoinParams, Reply, SyncParams};
use group::{JoinResult, SyncResult};
use records::{CoordinatorRecord, OffsetCommitKey, OffsetCommitValue};
pub use storage::StoreError;

/// Kafka's internal topic for offsets and group metadata.
pub const OFFSETS_TOPIC_NAME: &str = "__consumer_offsets";
/// How often the timer task checks deadlines, in milliseconds. Session timeouts are at least
/// `group.min.session.timeout.ms` (6000 by default), so 100 ms is well within their precision.
pub const GROUP_TICK_INTERVAL_MS: u64 = 100;

/// Group coordinator settings, Kafka's broker properties with Kafka's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSettings {
    /// `group.min.session.timeout.ms`: smallest session timeout a member may ask for (6000).
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: largest session timeout a member may ask for (1800000).
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long a new group's first rebalance waits for
    /// more members (3000).
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.max.size`: members per group (Kafka's default is `i32::MAX`).
    pub group_max_size: usize,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` (50).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.retention.minutes` in milliseconds: how long offsets of an Empty group (or of
    /// a standalone consumer, since its last commit) are kept (7 days).
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are removed (600000).
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`: longest metadata string of a commit (4096).
    pub offset_metadata_max_bytes: usize,
    // ---- KIP-848 consumer groups (Kafka's `GroupCoordinatorConfig`, 4.1 defaults) ----
    /// `group.coordinator.rebalance.protocols`: the group protocols enabled, lower case (Kafka
    /// 4.1's default `classic`, `consumer`, `streams`; Ringtail serves no `streams` or `share`).
    pub group_coordinator_rebalance_protocols: Vec<String>,
    /// `group.consumer.assignors`: server-side assignors by name, the first is the default
    /// (`uniform`, `range`).
    pub group_consumer_assignors: Vec<String>,
    /// `group.consumer.session.timeout.ms`: session timeout of a consumer group member (45000).
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.min.session.timeout.ms` (45000).
    pub group_consumer_min_session_timeout_ms: i32,
    /// `group.consumer.max.session.timeout.ms` (60000).
    pub group_consumer_max_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: the interval told to members (5000).
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.min.heartbeat.interval.ms` (5000).
    pub group_consumer_min_heartbeat_interval_ms: i32,
    /// `group.consumer.max.heartbeat.interval.ms` (15000).
    pub group_consumer_max_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`: members per consumer group (`i32::MAX`).
    pub group_consumer_max_size: usize,
    /// `group.consumer.migration.policy`: online conversion between classic and consumer
    /// groups (`bidirectional`).
    pub group_consumer_migration_policy: ConsumerGroupMigrationPolicy,
    /// `group.consumer.regex.refresh.interval.ms`: how often subscribed regular expressions are
    /// re-resolved against the topics (600000).
    pub group_consumer_regex_refresh_interval_ms: i32,
}

/// `group.consumer.migration.policy` (defined with the config block that parses it).
pub use crate::config::ConsumerGroupMigrationPolicy;

impl GroupSettings {
    /// Whether `group.coordinator.rebalance.protocols` lists `consumer` (KIP-848 served).
    pub fn consumer_protocol_enabled(&self) -> bool {
        self.group_coordinator_rebalance_protocols
            .iter()
            .any(|p| p == "consumer")
    }
}

impl Default for GroupSettings {
    fn default() -> GroupSettings {
        GroupSettings {
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_max_size: i32::MAX as usize,
            offsets_topic_num_partitions: 50,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            group_coordinator_rebalance_protocols: vec![
                "classic".into(),
                "consumer".into(),
                "streams".into(),
            ],
            group_consumer_assignors: vec!["uniform".into(), "range".into()],
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_min_session_timeout_ms: 45_000,
            group_consumer_max_session_timeout_ms: 60_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_min_heartbeat_interval_ms: 5_000,
            group_consumer_max_heartbeat_interval_ms: 15_000,
            group_consumer_max_size: i32::MAX as usize,
            group_consumer_migration_policy: ConsumerGroupMigrationPolicy::Bidirectional,
            group_consumer_regex_refresh_interval_ms: 600_000,
        }
    }
}

/// How the coordinator keeps its `__consumer_offsets` logs: Kafka creates the topic with
/// `cleanup.policy=compact` and `segment.bytes=offsets.topic.segment.bytes`
/// (`GroupCoordinatorService.groupMetadataTopicConfigs`); every other log setting is the
/// broker default (`log.cleaner.delete.retention.ms`, `log.cleaner.min.cleanable.ratio`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct OffsetsLogSettings {
    /// `offsets.topic.segment.bytes` (104857600).
    pub segment_bytes: u64,
    /// The cleaner settings from the broker defaults; `None` when `log.cleaner.enable=false`
    /// (the logs then grow, as Kafka's do).
    pub cleaner: Option<crate::log::CleanerConfig>,
    /// `log.cleaner.backoff.ms`: pause after a round that cleaned nothing (15000).
    pub cleaner_backoff_ms: u64,
}

impl Default for OffsetsLogSettings {
    fn default() -> OffsetsLogSettings {
        OffsetsLogSettings {
            segment_bytes: storage::OFFSETS_TOPIC_SEGMENT_BYTES,
            cleaner: None,
            cleaner_backoff_ms: 15_000,
        }
    }
}

/// Who sent a JoinGroup: shown by DescribeGroups (Kafka: request header client id, and the
/// peer address as `/host`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_host: String,
}

/// Java's `String.hashCode` over UTF-16 code units.
pub fn java_string_hashcode(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(unit as i32)
    })
}

/// The `__consumer_offsets` partition of a group (Kafka's `partitionFor`, with `Utils.abs`
/// mapping `i32::MIN` to 0). `num_partitions` must be positive.
pub fn offsets_partition_for(group_id: &str, num_partitions: i32) -> i32 {
    assert!(
        num_partitions > 0,
        "offsets.topic.num.partitions must be positive"
    );
    let hash = java_string_hashcode(group_id);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % num_partitions
}

/// The shard coordinating a group: the owner of its `__consumer_offsets` partition.
pub fn shard_for_group(group_id: &str, num_partitions: i32, shard_count: usize) -> usize {
    assert!(shard_count > 0, "shard_count must be positive");
    offsets_partition_for(group_id, num_partitions) as usize % shard_count
}

/// The `__consumer_offsets` partitions shard `shard_id` owns.
pub fn owned_offsets_partitions(
    shard_id: usize,
    shard_count: usize,
    num_partitions: i32,
) -> Vec<i32> {
    (0..num_partitions)
        .filter(|p| *p as usize % shard_count == shard_id)
        .collect()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One shard's group coordinator. Cheap to share within the shard; never crosses threads.
pub struct GroupCoordinator {
    inner: Rc<Inner>,
}

struct Inner {
    shard_id: usize,
    shard_count: usize,
    log_dir: PathBuf,
    offsets_log: OffsetsLogSettings,
    state: RefCell<CoordinatorState>,
    /// Appends waiting for the writer task, in state-change order.
    write_queue: RefCell<VecDeque<WriteRequest>>,
    /// Wakes the writer task; a full channel means a wakeup is already pending.
    writer_wakeup: RefCell<Option<glommio::channels::local_channel::LocalSender<()>>>,
    /// Set by `shutdown`; the timer and writer tasks end.
    stopping: Cell<bool>,
    tasks: RefCell<Vec<glommio::task::JoinHandle<()>>>,
    writer_done: RefCell<Option<oneshot::Receiver<()>>>,
    /// Told when the cleaner task ended; the writer closes the logs only after that.
    cleaner_done: RefCell<Option<oneshot::Receiver<()>>>,
}

/// Records for one `__consumer_offsets` partition, with a waiter when the caller needs them
/// durable.
struct WriteRequest {
    partition: i32,
    payload: WritePayload,
    durable: Option<DurableWaiter>,
}

/// What a [`WriteRequest`] appends. Plain records of consecutive requests share one batch; a
/// transactional batch or a marker is a batch of its own.
enum WritePayload {
    /// Group metadata and offset commits outside transactions.
    Records(Vec<CoordinatorRecord>),
    /// A TxnOffsetCommit's offsets: one transactional batch of the producer.
    Transactional {
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<CoordinatorRecord>,
    },
    /// A transaction marker (control batch) from the transaction coordinator.
    Marker(crate::partition::TxnMarker),
}

/// Told once the records it waits for are flushed, with the base offset of the batch that
/// holds them (`None`: nothing was appended), or why they are not.
type DurableWaiter = oneshot::Sender<Result<Option<i64>, StoreError>>;

impl GroupCoordinator {
    /// A coordinator for the groups of `shard_id`, storing under `log_dir` as `offsets_log`
    /// says. Not serving until [`GroupCoordinator::load`] finished.
    pub fn new(
        shard_id: usize,
        shard_count: usize,
        settings: GroupSettings,
        log_dir: PathBuf,
        offsets_log: OffsetsLogSettings,
    ) -> GroupCoordinator {
        GroupCoordinator {
            inner: Rc::new(Inner {
                shard_id,
                shard_count,
                log_dir,
                offsets_log,
                state: RefCell::new(CoordinatorState::new(shard_id, shard_count, settings)),
                write_queue: RefCell::new(VecDeque::new()),
                writer_wakeup: RefCell::new(None),
                stopping: Cell::new(false),
                tasks: RefCell::new(Vec::new()),
                writer_done: RefCell::new(None),
                cleaner_done: RefCell::new(None),
            }),
        }
    }

    pub fn shard_id(&self) -> usize {
        self.inner.shard_id
    }

    pub fn shard_count(&self) -> usize {
        self.inner.shard_count
    }

    /// Whether `group.coordinator.rebalance.protocols` lists `consumer`. When it does not,
    /// ConsumerGroupHeartbeat and ConsumerGroupDescribe answer UNSUPPORTED_VERSION (Kafka's
    /// `KafkaApis.isConsumerGroupProtocolEnabled`).
    pub fn consumer_protocol_enabled(&self) -> bool {
        self.inner
            .state
            .borrow()
            .settings()
            .consumer_protocol_enabled()
    }

    /// A copy of the settings.
    pub fn settings(&self) -> GroupSettings {
        self.inner.state.borrow().settings().clone()
    }

    /// Every group of this shard with its state, member count and committed offsets (for
    /// metrics and the status page).
    pub fn group_snapshots(&self) -> Vec<crate::metrics::GroupSnapshot> {
        self.inner
            .state
            .borrow()
            .groups()
            .map(|g| crate::metrics::GroupSnapshot {
                group_id: g.group_id.clone(),
                state: g.state.name(),
                members: g.members.len(),
                offsets: g
                    .offsets
                    .iter()
                    .map(|((topic, partition), value)| (topic.clone(), *partition, value.offset))
                    .collect(),
            })
            .collect()
    }

    /// The shard that coordinates `group_id`.
    pub fn shard_for(&self, group_id: &str) -> usize {
        let partitions = self
            .inner
            .state
            .borrow()
            .settings()
            .offsets_topic_num_partitions;
        shard_for_group(group_id, partitions, self.inner.shard_count)
    }

    /// Opens and replays this shard's `__consumer_offsets-<p>` logs, then starts serving and
    /// the timer, writer and cleaner tasks. Must run on the shard's executor. A cleaned log
    /// replays to the same state as the whole log did: the cleaner keeps the last record of
    /// every key (a tombstone until `delete.retention.ms` past its cleaning), and replay
    /// applies records by key, ignoring offsets and their gaps.
    pub async fn load(&self) -> Result<(), StoreError> {
        let settings = self.settings();
        let partitions = owned_offsets_partitions(
            self.inner.shard_id,
            self.inner.shard_count,
            settings.offsets_topic_num_partitions,
        );
        let mut logs = BTreeMap::new();
        let mut replayed = 0usize;
        for partition in partitions {
            let log = storage::PartitionLog::open(
                &self.inner.log_dir,
                partition,
                self.inner.offsets_log.segment_bytes,
            )
            .await?;
            // Batch by batch: transactional offsets stay pending until their marker.
            let batches = log.read_all_batches().await?;
            replayed += batches.len();
            let now = now_ms();
            let mut state = self.inner.state.borrow_mut();
            for batch in batches {
                state.replay_batch(partition, batch, now);
            }
            drop(state);
            logs.insert(partition, Rc::new(log));
        }
        let logs = Rc::new(logs);
        self.inner.state.borrow_mut().set_loaded(true, now_ms());
        tracing::info!(
            shard = self.inner.shard_id,
            batches = replayed,
            "group coordinator loaded"
        );
        let (wakeup_sender, wakeup_receiver) = glommio::channels::local_channel::new_bounded(1);
        *self.inner.writer_wakeup.borrow_mut() = Some(wakeup_sender);
        let (done_sender, done_receiver) = oneshot::channel();
        *self.inner.writer_done.borrow_mut() = Some(done_receiver);
        let (cleaner_sender, cleaner_receiver) = oneshot::channel();
        *self.inner.cleaner_done.borrow_mut() = Some(cleaner_receiver);
        let cleaner = glommio::spawn_local(cleaner_task(
            self.inner.clone(),
            logs.clone(),
            cleaner_sender,
        ))
        .detach();
        let writer = glommio::spawn_local(writer_task(
            self.inner.clone(),
            logs,
            wakeup_receiver,
            done_sender,
        ))
        .detach();
        let timer = glommio::spawn_local(timer_task(self.inner.clone())).detach();
        self.inner
            .tasks
            .borrow_mut()
            .extend([writer, timer, cleaner]);
        Ok(())
    }

    /// Answers every waiting request, writes what is queued, flushes and closes the logs.
    pub async fn shutdown(&self) {
        self.inner.stopping.set(true);
        // The cleaner ends its pass first: the writer closes the logs it cleans.
        let cleaner_done = self.inner.cleaner_done.borrow_mut().take();
        if let Some(cleaner_done) = cleaner_done {
            let _ = cleaner_done.await;
        }
        self.inner.state.borrow_mut().unload(now_ms());
        // Dropping the sender ends the writer once the queue is drained.
        self.inner.writer_wakeup.borrow_mut().take();
        let done = self.inner.writer_done.borrow_mut().take();
        if let Some(done) = done {
            let _ = done.await;
        }
        for task in self.inner.tasks.borrow_mut().drain(..) {
            task.cancel();
        }
    }

    /// JoinGroup v0-9. `client` names the sender for DescribeGroups.
    pub async fn join_group(
        &self,
        request: JoinGroupRequest,
        version: i16,
        client: &ClientInfo,
    ) -> JoinGroupResponse {
        let params = JoinParams {
            group_id: request.group_id.to_string(),
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: client.client_id.clone(),
            client_host: client.client_host.clone(),
            session_timeout_ms: request.session_timeout_ms,
            // v0 has no rebalance timeout; Kafka uses the session timeout.
            rebalance_timeout_ms: if version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
        };
        let member_id = params.member_id.clone();
        let reply = self.inner.state.borrow_mut().join_group(params, now_ms());
        self.inner.submit_pending();
        let result = match reply {
            Reply::Ready(result) => result,
            Reply::Pending(receiver) => receiver.await.unwrap_or_else(|_| {
                JoinResult::error(member_id, ResponseError::CoordinatorNotAvailable)
            }),
        };
        responses::join_group(result, version)
    }

    /// SyncGroup v0-5.
    pub async fn sync_group(&self, request: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let params = SyncParams {
            group_id: request.group_id.to_string(),
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
            protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
            assignments: request
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        };
        let reply = self.inner.state.borrow_mut().sync_group(params, now_ms());
        self.inner.submit_pending();
        let result = match reply {
            Reply::Ready(result) => result,
            Reply::Pending(receiver) => receiver
                .await
                .unwrap_or_else(|_| SyncResult::error(ResponseError::CoordinatorNotAvailable)),
        };
        responses::sync_group(result, version)
    }

    /// Heartbeat v0-4.
    pub async fn heartbeat(&self, request: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        let error = self.inner.state.borrow_mut().heartbeat(
            &request.group_id,
            request.generation_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            now_ms(),
        );
        self.inner.submit_pending();
        HeartbeatResponse::default().with_error_code(code(error))
    }

    /// LeaveGroup v0-5 (v3+ leaves a batch of members, by member id or `group.instance.id`).
    pub async fn leave_group(
        &self,
        request: LeaveGroupRequest,
        version: i16,
    ) -> LeaveGroupResponse {
        let members: Vec<(String, Option<String>)> = if version >= 3 {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let result =
            self.inner
                .state
                .borrow_mut()
                .leave_group(&request.group_id, &members, now_ms());
        self.inner.submit_pending();
        responses::leave_group(&members, result, version)
    }

    /// OffsetCommit v2-9: answered once the commit is flushed to `__consumer_offsets`.
    pub async fn offset_commit(
        &self,
        request: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let group_id = request.group_id.to_string();
        let now = now_ms();
        // KIP-848 groups check the member epoch instead (STALE_MEMBER_EPOCH).
        let consumer_validation = self.inner.state.borrow().validate_consumer_offset_commit(
            &group_id,
            request.generation_id_or_member_epoch,
            &request.member_id,
            false,
            version,
        );
        let validation = match consumer_validation {
            Some(validation) => validation,
            None => self.inner.state.borrow_mut().validate_offset_commit(
                &group_id,
                request.generation_id_or_member_epoch,
                &request.member_id,
                request.group_instance_id.as_deref(),
                now,
            ),
        };
        self.inner.submit_pending();
        if let Err(error) = validation {
            tracing::debug!(group = %group_id, member = %request.member_id, generation = request.generation_id_or_member_epoch, %error, "offset commit rejected");
        }
        let max_metadata = self
            .inner
            .state
            .borrow()
            .settings()
            .offset_metadata_max_bytes;
        let num_partitions = self
            .inner
            .state
            .borrow()
            .settings()
            .offsets_topic_num_partitions;
        // (topic, partition, error) in request order, and the values to store.
        let mut results: Vec<(String, i32, Option<ResponseError>)> = Vec::new();
        let mut accepted: Vec<(String, i32, OffsetCommitValue)> = Vec::new();
        for topic in &request.topics {
            for partition in &topic.partitions {
                let name = topic.name.to_string();
                let metadata = partition.committed_metadata.as_deref().unwrap_or("");
                let error = match validation {
                    Err(error) => Some(error),
                    Ok(()) if metadata.len() > max_metadata => {
                        Some(ResponseError::OffsetMetadataTooLarge)
                    }
                    Ok(()) => {
                        accepted.push((
                            name.clone(),
                            partition.partition_index,
                            OffsetCommitValue {
                                offset: partition.committed_offset,
                                leader_epoch: if version >= 6 {
                                    partition.committed_leader_epoch
                                } else {
                                    -1
                                },
                                metadata: metadata.to_owned(),
                                commit_timestamp: now,
                            },
                        ));
                        None
                    }
                };
                results.push((name, partition.partition_index, error));
            }
        }
        if !accepted.is_empty() {
            let records = accepted
                .iter()
                .map(
                    |(topic, partition, value)| CoordinatorRecord::OffsetCommit {
                        key: OffsetCommitKey {
                            group: group_id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        value: Some(value.clone()),
                    },
                )
                .collect();
            let stored = self
                .inner
                .write_durable(
                    offsets_partition_for(&group_id, num_partitions),
                    WritePayload::Records(records),
                )
                .await;
            match stored {
                Ok(base_offset) => {
                    let mut state = self.inner.state.borrow_mut();
                    if let Some(base_offset) = base_offset {
                        state.on_offset_commit_append(&group_id, &accepted, base_offset);
                    }
                    state.apply_offset_commit(&group_id, accepted, now_ms())
                }
                Err(error) => {
                    tracing::warn!(group = %group_id, %error, "offset commit not stored");
                    for result in results.iter_mut().filter(|r| r.2.is_none()) {
                        result.2 = Some(ResponseError::CoordinatorNotAvailable);
                    }
                }
            }
        }
        responses::offset_commit(results)
    }

    /// OffsetFetch v1-9 for the groups of the request that this shard coordinates (v8+ may
    /// name several; the request handler splits them by shard).
    pub async fn offset_fetch(
        &self,
        request: OffsetFetchRequest,
        version: i16,
    ) -> OffsetFetchResponse {
        let state = self.inner.state.borrow();
        if version >= 8 {
            let groups = request
                .groups
                .iter()
                .map(|group| {
                    let topics = group.topics.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let member_error = if version >= 9 {
                        state.validate_consumer_offset_fetch(
                            &group.group_id,
                            group.member_id.as_deref(),
                            group.member_epoch,
                        )
                    } else {
                        None
                    };
                    let result = match member_error {
                        Some(error) => Err(error),
                        None => state.fetch_offsets(&group.group_id, topics.clone()),
                    };
                    responses::offset_fetch_group(group.group_id.clone(), topics, result)
                })
                .collect();
            let mut response = OffsetFetchResponse::default().with_groups(groups);
            if request.require_stable {
                txn_offset_commit::mark_unstable_offsets(&state, &mut response, "");
            }
            return response;
        }
        let topics = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect::<Vec<_>>()
        });
        let result = state.fetch_offsets(&request.group_id, topics.clone());
        let mut response = responses::offset_fetch_single(topics, result, version);
        if version >= 7 && request.require_stable {
            txn_offset_commit::mark_unstable_offsets(&state, &mut response, &request.group_id);
        }
        response
    }

    /// ListGroups v0-5: this shard's groups (the request handler merges all shards).
    pub async fn list_groups(
        &self,
        request: ListGroupsRequest,
        version: i16,
    ) -> ListGroupsResponse {
        let states: Vec<String> = if version >= 4 {
            request
                .states_filter
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            request.types_filter.iter().map(|s| s.to_string()).collect()
        } else {
            Vec::new()
        };
        let state = self.inner.state.borrow();
        let listed = state.list_groups(&states, &types);
        let mut groups = responses::listed_groups(listed, version);
        groups.extend(
            state
                .list_consumer_groups(&states, &types)
                .into_iter()
                .map(|g| consumer_group::listed_group(g, version)),
        );
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        let mut response = ListGroupsResponse::default().with_groups(groups);
        if !state.is_loaded() {
            response.error_code = ResponseError::CoordinatorLoadInProgress.code();
        }
        response
    }

    /// DescribeGroups v0-6 for the groups of the request (all expected to be this shard's).
    pub async fn describe_groups(
        &self,
        request: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let state = self.inner.state.borrow();
        let groups = request
            .groups
            .iter()
            .map(|group_id| {
                let summary = state.describe_group(group_id);
                responses::described_group(
                    group_id.clone(),
                    summary,
                    request.include_authorized_operations,
                    version,
                )
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    /// DeleteGroups v0-2: only Empty groups are deleted; answered once the tombstones are
    /// flushed.
    pub async fn delete_groups(
        &self,
        request: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        let now = now_ms();
        let results: Vec<(kafka_protocol::messages::GroupId, Option<ResponseError>)> = request
            .groups_names
            .iter()
            .map(|group_id| {
                (
                    group_id.clone(),
                    self.inner.state.borrow_mut().delete_group(group_id, now),
                )
            })
            .collect();
        let flushed = self.inner.submit_pending_durable().await;
        let results = results
            .into_iter()
            .map(|(group_id, error)| {
                let error = match (&flushed, error) {
                    (Err(_), None) => Some(ResponseError::CoordinatorNotAvailable),
                    (_, error) => error,
                };
                kafka_protocol::messages::delete_groups_response::DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(code(error))
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    }

    /// OffsetDelete v0.
    pub async fn offset_delete(
        &self,
        request: OffsetDeleteRequest,
        _version: i16,
    ) -> OffsetDeleteResponse {
        let topics: Vec<(String, Vec<i32>)> = request
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        let result =
            self.inner
                .state
                .borrow_mut()
                .delete_offsets(&request.group_id, &topics, now_ms());
        let flushed = self.inner.submit_pending_durable().await;
        let result = match (result, flushed) {
            (Ok(_), Err(_)) => Err(ResponseError::CoordinatorNotAvailable),
            (result, _) => result,
        };
        responses::offset_delete(result)
    }
}

impl Inner {
    /// Queues the records the last state change produced, without waiting for them.
    fn submit_pending(&self) {
        let records = self.state.borrow_mut().take_pending_records();
        if records.is_empty() {
            return;
        }
        let mut queue = self.write_queue.borrow_mut();
        for (partition, record) in records {
            queue.push_back(WriteRequest {
                partition,
                payload: WritePayload::Records(vec![record]),
                durable: None,
            });
        }
        drop(queue);
        self.wake_writer();
    }

    /// Queues the pending records and waits until they are flushed.
    async fn submit_pending_durable(&self) -> Result<(), StoreError> {
        let records = self.state.borrow_mut().take_pending_records();
        let mut by_partition: BTreeMap<i32, Vec<CoordinatorRecord>> = BTreeMap::new();
        for (partition, record) in records {
            by_partition.entry(partition).or_default().push(record);
        }
        let mut waiters = Vec::new();
        for (partition, records) in by_partition {
            waiters.push(self.enqueue_durable(partition, WritePayload::Records(records)));
        }
        for waiter in waiters {
            waiter.await.unwrap_or(Err(StoreError::Stopped))?;
        }
        Ok(())
    }

    /// Appends `payload` to one partition and waits until it is flushed; returns the base
    /// offset of the batch holding it.
    async fn write_durable(
        &self,
        partition: i32,
        payload: WritePayload,
    ) -> Result<Option<i64>, StoreError> {
        // Earlier state changes go first so the log keeps their order.
        self.submit_pending();
        self.enqueue_durable(partition, payload)
            .await
            .unwrap_or(Err(StoreError::Stopped))
    }

    fn enqueue_durable(
        &self,
        partition: i32,
        payload: WritePayload,
    ) -> oneshot::Receiver<Result<Option<i64>, StoreError>> {
        let (sender, receiver) = oneshot::channel();
        if self.stopping.get() || self.writer_wakeup.borrow().is_none() {
            let _ = sender.send(Err(StoreError::Stopped));
            return receiver;
        }
        self.write_queue.borrow_mut().push_back(WriteRequest {
            partition,
            payload,
            durable: Some(sender),
        });
        self.wake_writer();
        receiver
    }

    fn wake_writer(&self) {
        if let Some(sender) = self.writer_wakeup.borrow().as_ref() {
            // Full means a wakeup is already pending; the writer drains the whole queue.
            let _ = sender.try_send(());
        }
    }
}

/// Fires group deadlines every [`GROUP_TICK_INTERVAL_MS`] and queues the records that
/// produced.
async fn timer_task(inner: Rc<Inner>) {
    while !inner.stopping.get() {
        glommio::timer::sleep(Duration::from_millis(GROUP_TICK_INTERVAL_MS)).await;
        if inner.stopping.get() {
            break;
        }
        inner.state.borrow_mut().tick(now_ms());
        inner.submit_pending();
    }
}

/// Drains the write queue: one batch per partition per round, one flush per partition that
/// has a durable waiter (group commit), then answers the waiters.
async fn writer_task(
    inner: Rc<Inner>,
    logs: Rc<BTreeMap<i32, Rc<storage::PartitionLog>>>,
    wakeup: glommio::channels::local_channel::LocalReceiver<()>,
    done: oneshot::Sender<()>,
) {
    loop {
        let requests: Vec<WriteRequest> = inner.write_queue.borrow_mut().drain(..).collect();
        if requests.is_empty() {
            if wakeup.recv().await.is_none() {
                // Shutdown: one last drain happens above on the next pass if anything is left.
                if inner.write_queue.borrow().is_empty() {
                    break;
                }
            }
            continue;
        }
        let mut by_partition: BTreeMap<i32, Vec<WriteRequest>> = BTreeMap::new();
        for request in requests {
            by_partition
                .entry(request.partition)
                .or_default()
                .push(request);
        }
        for (partition, requests) in by_partition {
            match logs.get(&partition) {
                Some(log) => write_partition(log, requests).await,
                None => {
                    for waiter in requests.into_iter().filter_map(|r| r.durable) {
                        let _ = waiter.send(Err(StoreError::NotOwned { partition }));
                    }
                }
            }
        }
    }
    for (partition, log) in logs.iter() {
        if let Err(error) = log.close().await {
            tracing::error!(partition, %error, "closing __consumer_offsets log failed");
        }
    }
    let _ = done.send(());
}

/// Appends one round of requests to one partition in their order (consecutive plain records
/// in one batch, each transactional batch and marker on its own), flushes once if anyone
/// waits, and answers each waiter with the base offset of its batch. After a failed append or
/// flush every waiter of the round gets the error.
async fn write_partition(log: &storage::PartitionLog, requests: Vec<WriteRequest>) {
    let mut answers: Vec<(DurableWaiter, Option<i64>)> = Vec::new();
    let mut plain: Vec<CoordinatorRecord> = Vec::new();
    let mut plain_waiters: Vec<DurableWaiter> = Vec::new();
    let mut failure: Option<StoreError> = None;
    let mut needs_flush = false;
    for request in requests {
        needs_flush |= request.durable.is_some();
        let appended = match request.payload {
            WritePayload::Records(records) => {
                plain.extend(records);
                plain_waiters.extend(request.durable);
                continue;
            }
            WritePayload::Transactional {
                producer_id,
                producer_epoch,
                records,
            } => {
                flush_plain(
                    log,
                    &mut plain,
                    &mut plain_waiters,
                    &mut answers,
                    &mut failure,
                )
                .await;
                if failure.is_some() {
                    None
                } else {
                    Some(
                        log.append_transactional(&records, producer_id, producer_epoch, now_ms())
                            .await,
                    )
                }
            }
            WritePayload::Marker(marker) => {
                flush_plain(
                    log,
                    &mut plain,
                    &mut plain_waiters,
                    &mut answers,
                    &mut failure,
                )
                .await;
                if failure.is_some() {
                    None
                } else {
                    Some(
                        log.append_marker(
                            marker.producer_id,
                            marker.producer_epoch,
                            marker.coordinator_epoch,
                            marker.commit,
                            now_ms(),
                        )
                        .await,
                    )
                }
            }
        };
        match appended {
            Some(Ok(base_offset)) => {
                answers.extend(request.durable.map(|w| (w, Some(base_offset))))
            }
            Some(Err(error)) => {
                failure = Some(error);
                answers.extend(request.durable.map(|w| (w, None)));
            }
            None => answers.extend(request.durable.map(|w| (w, None))),
        }
    }
    flush_plain(
        log,
        &mut plain,
        &mut plain_waiters,
        &mut answers,
        &mut failure,
    )
    .await;
    if failure.is_none() && needs_flush {
        if let Err(error) = log.flush().await {
            failure = Some(error);
        }
    }
    if let Some(error) = &failure {
        tracing::error!(%error, "__consumer_offsets append failed");
    }
    for (waiter, base_offset) in answers {
        let _ = waiter.send(match &failure {
            Some(error) => Err(error.clone()),
            None => Ok(base_offset),
        });
    }
}

/// Appends the collected plain records as one batch (unless an earlier append failed) and
/// moves their waiters to `answers` with the batch's base offset.
async fn flush_plain(
    log: &storage::PartitionLog,
    plain: &mut Vec<CoordinatorRecord>,
    plain_waiters: &mut Vec<DurableWaiter>,
    answers: &mut Vec<(DurableWaiter, Option<i64>)>,
    failure: &mut Option<StoreError>,
) {
    let records = std::mem::take(plain);
    let waiters = std::mem::take(plain_waiters);
    let mut base_offset = None;
    if failure.is_none() && !records.is_empty() {
        match log.append(&records, now_ms()).await {
            Ok(offset) => base_offset = offset,
            Err(error) => *failure = Some(error),
        }
    }
    answers.extend(waiters.into_iter().map(|w| (w, base_offset)));
}

/// Runs log-cleaner passes ([`storage::PartitionLog::clean`]) over this shard's
/// `__consumer_offsets` logs until the coordinator stops: one partition after the other (never
/// two passes on one log at once), again at once after a round that cleaned something, else
/// after `log.cleaner.backoff.ms` (Kafka's `CleanerThread.doWork`). The first dirty offsets go
/// to and come from `cleaner-offset-checkpoint` as `__consumer_offsets <p>`, as Kafka's. A
/// failed pass is logged and retried on the next round; the partition stays online.
async fn cleaner_task(
    inner: Rc<Inner>,
    logs: Rc<BTreeMap<i32, Rc<storage::PartitionLog>>>,
    done: oneshot::Sender<()>,
) {
    if let Some(config) = inner.offsets_log.cleaner.clone() {
        let backoff = Duration::from_millis(inner.offsets_log.cleaner_backoff_ms.max(1));
        let tick = Duration::from_millis(GROUP_TICK_INTERVAL_MS);
        while !inner.stopping.get() {
            if clean_offsets_logs(&inner, &logs, &config).await > 0 {
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

/// One cleaner round over `logs`; returns the partitions cleaned.
async fn clean_offsets_logs(
    inner: &Inner,
    logs: &BTreeMap<i32, Rc<storage::PartitionLog>>,
    config: &crate::log::CleanerConfig,
) -> usize {
    let checkpoint = match crate::log::read_cleaner_checkpoint(&inner.log_dir) {
        Ok(checkpoint) => checkpoint,
        Err(error) => {
            tracing::warn!(%error, "reading the cleaner checkpoint failed");
            Default::default()
        }
    };
    let mut cleaned = 0;
    for (&partition, log) in logs.iter() {
        if inner.stopping.get() {
            break;
        }
        let key = (OFFSETS_TOPIC_NAME.to_string(), partition);
        match log
            .clean(config, checkpoint.get(&key).copied(), now_ms())
            .await
        {
            Ok(None) => {}
            Ok(Some(summary)) => {
                cleaned += 1;
                tracing::info!(
                    topic = OFFSETS_TOPIC_NAME,
                    partition,
                    segments = summary.segments_cleaned,
                    bytes_before = summary.bytes_before,
                    bytes_after = summary.bytes_after,
                    keys = summary.keys_mapped,
                    first_dirty_offset = summary.first_dirty_offset,
                    "cleaned log"
                );
                let update = [(key, Some(summary.first_dirty_offset))];
                if let Err(error) = crate::log::write_cleaner_checkpoint(&inner.log_dir, &update) {
                    tracing::warn!(%error, "writing the cleaner checkpoint failed");
                }
            }
            Err(error) => {
                tracing::warn!(partition, %error, "cleaning __consumer_offsets failed")
            }
        }
        glommio::yield_if_needed().await;
    }
    cleaned
}

fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
