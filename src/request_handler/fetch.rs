//! Fetch (key 1), v4-18, with incremental fetch sessions (KIP-227, [`super::fetch_session`]):
//! the session lookup may answer with a session error or rewrite an incremental request to
//! every partition of its session before the read; after it, the response keeps only what the
//! session says the client needs. KIP-951 leader hints ([`super::leader_hint`]) fill
//! `CurrentLeader` / `NodeEndpoints` (v16+).
//!
//! Partitions are read on their owning shards in parallel. When fewer than `min_bytes` came
//! back, the request long-polls: every shard involved watches its partitions' high watermarks
//! and the first to see new data wakes the request, which reads again, until `max_wait_ms`.
//! `max_bytes` bounds the whole response except that the first batch of the first non-empty
//! partition is always returned whole (KIP-74); bytes are stored batches, never re-encoded.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{join_all, select_all, LocalBoxFuture};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::*;

use super::authorize;
use super::offset_for_leader_epoch::leader_epoch_error;
use super::{fetch_session, leader_hint};
use crate::partition::{FetchRead, ReadError, ReadNow};
use crate::protocol::record_batch::BatchIter;
use crate::replica_manager::TopicPartitions;
use crate::security::authorizer::AclOperation;
use crate::security::Session;
use crate::shard::{self, ShardContext};

#[derive(Clone)]
struct FetchPart {
    slot: (usize, usize),
    /// Shared by the parts of one topic (one allocation per topic per request).
    topic: Arc<str>,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    /// isolation_level 1 (KIP-98): only records below the last stable offset.
    read_committed: bool,
}

struct PartFetch {
    slot: (usize, usize),
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    last_stable_offset: i64,
    /// `None` for read_uncommitted (Kafka answers a null array then).
    aborted_transactions: Option<Vec<crate::partition::AbortedTxn>>,
    records: Bytes,
}

/// ACLs (Kafka's `KafkaApis.handleFetchRequest`, consumer fetch): READ on each topic, else its
/// partitions answer TOPIC_AUTHORIZATION_FAILED (an unknown topic id stays UNKNOWN_TOPIC_ID).
///
/// A follower fetch (replica id >= 0; v15+ in `ReplicaState`) needs CLUSTER_ACTION on CLUSTER
/// instead, else every partition answers TOPIC_AUTHORIZATION_FAILED, as Kafka. Authorized, it
/// gets what a single-node Kafka leader answers a replica outside the partition's replica set
/// ([`follower_error`]): Ringtail has no replication, so no fetcher is ever a follower.
pub async fn handle(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: FetchRequest,
    version: i16,
) -> FetchResponse {
    let mut request = request;
    let fetch_session = match fetch_session::begin(&ctx, &mut request, version).await {
        Ok(fetch_session) => fetch_session,
        Err(error) => {
            return FetchResponse::default()
                .with_session_id(fetch_session::INVALID_SESSION_ID)
                .with_error_code(error.code())
        }
    };
    let (topics, results) = read_partitions(&ctx, &session, request, version).await;
    let outcomes = results.iter().map(PartFetch::outcome).collect();
    let finished = fetch_session::finish(&ctx, fetch_session, outcomes).await;
    let mut response = build_response(topics, results, finished.kept.as_deref())
        .with_session_id(finished.session_id)
        .with_error_code(finished.error_code);
    down_convert_storage_error(version, &mut response);
    leader_hint::fill_fetch(&ctx, &session.listener_name, version, &mut response);
    response
}

/// A requested topic as the response names it, and its partitions' indexes in request order.
struct TopicSlots {
    topic: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<i32>,
}

/// The response: every partition of `results` (one per requested partition, in slot order)
/// whose flag in `kept` is set (all when `kept` is `None`); topics left with no partition are
/// left out, as Kafka's incremental responses do.
fn build_response(
    topics: Vec<TopicSlots>,
    results: Vec<PartFetch>,
    kept: Option<&[bool]>,
) -> FetchResponse {
    let mut response = FetchResponse::default();
    let mut results = results.into_iter().enumerate().peekable();
    for (topic_index, topic) in topics.into_iter().enumerate() {
        let mut topic_response = FetchableTopicResponse::default()
            .with_topic(topic.topic)
            .with_topic_id(topic.topic_id);
        while let Some((position, result)) = results.next_if(|(_, r)| r.slot.0 == topic_index) {
            if kept.is_some_and(|kept| !kept.get(position).copied().unwrap_or(true)) {
                continue;
            }
            let partition_index = topic.partitions[result.slot.1];
            topic_response
                .partitions
                .push(result.into_partition_data(partition_index));
        }
        if !topic_response.partitions.is_empty() || kept.is_none() {
            response.responses.push(topic_response);
        }
    }
    response
}

/// Fetch v5 and older answer KAFKA_STORAGE_ERROR as NOT_LEADER_OR_FOLLOWER, so that older
/// consumers refresh metadata and retry (Kafka's `KafkaApis.maybeDownConvertStorageError`).
fn down_convert_storage_error(version: i16, response: &mut FetchResponse) {
    if version > 5 {
        return;
    }
    let storage_error = ResponseError::KafkaStorageError.code();
    for partition in response
        .responses
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut())
    {
        if partition.error_code == storage_error {
            partition.error_code = ResponseError::NotLeaderOrFollower.code();
        }
    }
}

/// Reads every partition `request` names: its topics, and one answer per partition in request
/// (slot) order, each cut to the request's `max_bytes` budget.
async fn read_partitions(
    ctx: &Rc<ShardContext>,
    session: &Rc<Session>,
    request: FetchRequest,
    version: i16,
) -> (Vec<TopicSlots>, Vec<PartFetch>) {
    let ctx = ctx.clone();
    let mut topics: Vec<TopicSlots> = Vec::with_capacity(request.topics.len());
    let image = ctx.metadata();
    let max_bytes = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut by_shard: Vec<Vec<FetchPart>> = (0..ctx.shard_count).map(|_| Vec::new()).collect();
    let mut results: Vec<PartFetch> = Vec::new();
    let read_committed = request.isolation_level == 1;
    let follower = fetch_session::is_from_follower(&request, version)
        .then(|| authorize::authorize_cluster(&ctx, session, AclOperation::ClusterAction));
    for (topic_index, topic) in request.topics.into_iter().enumerate() {
        let metadata = if version >= 13 {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.topic.as_str())
        };
        let unknown = if version >= 13 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let denied = follower.is_none()
            && (metadata.is_some() || version < 13)
            && !authorize::authorize_topic_cached(
                &ctx,
                session,
                AclOperation::Read,
                metadata.map_or(topic.topic.as_str(), |m| m.name.as_str()),
            );
        let topic_name: Option<Arc<str>> = metadata.map(|m| Arc::from(m.name.as_str()));
        let mut topic_slots = TopicSlots {
            topic: topic.topic,
            topic_id: topic.topic_id,
            partitions: Vec::with_capacity(topic.partitions.len()),
        };
        for (partition_index, partition) in topic.partitions.into_iter().enumerate() {
            let slot = (topic_index, partition_index);
            topic_slots.partitions.push(partition.partition);
            if denied {
                results.push(PartFetch::error(
                    slot,
                    ResponseError::TopicAuthorizationFailed,
                ));
                continue;
            }
            if let Some(authorized) = follower {
                let error = if !authorized {
                    ResponseError::TopicAuthorizationFailed
                } else {
                    match metadata {
                        None => unknown,
                        Some(metadata) => follower_error(
                            metadata,
                            partition.partition,
                            partition.current_leader_epoch,
                        ),
                    }
                };
                results.push(PartFetch::error(slot, error));
                continue;
            }
            match metadata.and_then(|m| Some((m, m.shard_of(partition.partition)?))) {
                Some((metadata, shard)) => match leader_epoch_error(
                    metadata,
                    partition.partition,
                    partition.current_leader_epoch,
                ) {
                    Some(error) => results.push(PartFetch::error(slot, error)),
                    None => by_shard[shard].push(FetchPart {
                        slot,
                        topic: topic_name
                            .clone()
                            .unwrap_or_else(|| Arc::from(metadata.name.as_str())),
                        partition: partition.partition,
                        fetch_offset: partition.fetch_offset,
                        max_bytes: (partition.partition_max_bytes.max(0) as usize).min(max_bytes),
                        read_committed,
                    }),
                },
                None => results.push(PartFetch::error(slot, unknown)),
            }
        }
        topics.push(topic_slots);
    }

    let by_shard: Vec<Arc<[FetchPart]>> = by_shard.into_iter().map(Arc::from).collect();
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    let read = loop {
        let read = read_all(&ctx, &by_shard).await;
        let total: usize = read.iter().map(|r| r.records.len()).sum();
        let failed = read.iter().any(|r| r.error_code != 0) || !results.is_empty();
        let now = Instant::now();
        if total >= min_bytes || failed || now >= deadline {
            break read;
        }
        wait_for_data(&by_shard, deadline - now).await;
        if Instant::now() >= deadline {
            break read_all(&ctx, &by_shard).await;
        }
    };
    results.extend(read);
    results.sort_by_key(|r| r.slot);

    debug_assert!(
        results.windows(2).all(|w| w[0].slot < w[1].slot),
        "invariant: one answer per requested partition"
    );
    let mut budget_used = 0usize;
    for result in &mut results {
        let records = std::mem::take(&mut result.records);
        result.records = fit_budget(records, &mut budget_used, max_bytes);
    }
    (topics, results)
}

/// What Kafka's leader answers an authorized follower fetch for a partition of a known topic
/// when the fetching replica is not in the partition's replica set (`Partition.fetchRecords`:
/// the epoch check of `localLogWithEpochOrThrow` first, then `followerReplicaOrThrow`):
/// UNKNOWN_TOPIC_OR_PARTITION for a partition the topic lacks, FENCED_LEADER_EPOCH /
/// UNKNOWN_LEADER_EPOCH for a stale / future `current_leader_epoch`, UNKNOWN_LEADER_EPOCH when
/// the epoch is given and matches, NOT_LEADER_OR_FOLLOWER when it is -1. Ringtail's replica set
/// is its own node only, so every follower is outside it.
fn follower_error(
    metadata: &crate::metadata::TopicMetadata,
    partition: i32,
    current_leader_epoch: i32,
) -> ResponseError {
    if metadata.shard_of(partition).is_none() {
        return ResponseError::UnknownTopicOrPartition;
    }
    match leader_epoch_error(metadata, partition, current_leader_epoch) {
        Some(error) => error,
        None if current_leader_epoch >= 0 => ResponseError::UnknownLeaderEpoch,
        None => ResponseError::NotLeaderOrFollower,
    }
}

/// Record sets large enough to be sent from where they are stored rather than copied into the
/// encoded response, in the order the encoder writes them.
pub fn shareable_records(response: &FetchResponse) -> Vec<Bytes> {
    response
        .responses
        .iter()
        .flat_map(|topic| &topic.partitions)
        .filter_map(|partition| partition.records.clone())
        .filter(|records| records.len() >= SHARED_RECORDS_MIN_BYTES)
        .collect()
}

/// Smaller record sets are copied into the response: one more write costs more than the copy.
const SHARED_RECORDS_MIN_BYTES: usize = 16 * 1024;

impl PartFetch {
    /// What the fetch session needs to know of this answer.
    fn outcome(&self) -> fetch_session::PartitionOutcome {
        fetch_session::PartitionOutcome {
            records_bytes: self.records.len(),
            high_watermark: self.high_watermark,
            log_start_offset: self.log_start_offset,
            error_code: self.error_code,
            // Ringtail is the only replica: it names no preferred read replica (KIP-392) and
            // never answers a diverging epoch (followers only).
            preferred_read_replica: -1,
            diverging_epoch: false,
        }
    }

    /// The response partition `partition_index` for this answer.
    fn into_partition_data(self, partition_index: i32) -> PartitionData {
        PartitionData::default()
            .with_partition_index(partition_index)
            .with_error_code(self.error_code)
            .with_high_watermark(self.high_watermark)
            .with_last_stable_offset(self.last_stable_offset)
            .with_log_start_offset(self.log_start_offset)
            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
            .with_aborted_transactions(self.aborted_transactions.map(|aborted| {
                aborted
                    .into_iter()
                    .map(|txn| {
                        fetch_response::AbortedTransaction::default()
                            .with_producer_id(kafka_protocol::messages::ProducerId(txn.producer_id))
                            .with_first_offset(txn.first_offset)
                    })
                    .collect()
            }))
            .with_records(Some(self.records))
    }

    fn error(slot: (usize, usize), error: ResponseError) -> PartFetch {
        PartFetch {
            slot,
            error_code: error.code(),
            high_watermark: -1,
            log_start_offset: -1,
            last_stable_offset: -1,
            aborted_transactions: None,
            records: Bytes::new(),
        }
    }
}

/// Keeps whole batches within what is left of `max_bytes`; the first non-empty partition keeps
/// at least its first batch (KIP-74).
fn fit_budget(records: Bytes, used: &mut usize, max_bytes: usize) -> Bytes {
    let remaining = max_bytes.saturating_sub(*used);
    let mut end = 0;
    for (position, header) in BatchIter::new(&records) {
        let batch_end = position + header.size_bytes();
        let first_of_response = *used == 0 && position == 0;
        if batch_end > remaining && !first_of_response {
            break;
        }
        end = batch_end;
    }
    *used += end;
    records.slice(..end)
}

/// Reads every shard's parts, each on its shard, in parallel. `by_shard[s]` is the shard's
/// parts (an `Arc` so that a long poll's re-reads copy no part).
async fn read_all(ctx: &Rc<ShardContext>, by_shard: &[Arc<[FetchPart]>]) -> Vec<PartFetch> {
    let reads = by_shard
        .iter()
        .enumerate()
        .filter(|(_, parts)| !parts.is_empty())
        .map(|(shard, parts)| {
            let future: LocalBoxFuture<'_, Vec<PartFetch>> = if shard == ctx.shard_id {
                Box::pin(read_local(ctx.clone(), parts))
            } else {
                let parts = parts.clone();
                Box::pin(shard::invoke_on(shard, move |ctx| {
                    Box::pin(async move { read_local(ctx, &parts).await })
                }))
            };
            future
        });
    join_all(reads).await.into_iter().flatten().collect()
}

/// Reads `parts` on this shard. What needs no I/O (nothing new, a tail-cache hit, an error) is
/// answered in one synchronous pass; only partitions whose data is in the segment files get a
/// future each.
async fn read_local(ctx: Rc<ShardContext>, parts: &[FetchPart]) -> Vec<PartFetch> {
    let mut answered = Vec::with_capacity(parts.len());
    let mut from_log = Vec::new();
    // The parts of a topic are consecutive and share one name: one topic lookup for them all.
    let mut topic: Option<(&Arc<str>, Option<TopicPartitions>)> = None;
    for part in parts.iter() {
        let same_topic = topic
            .as_ref()
            .is_some_and(|(name, _)| Arc::ptr_eq(name, &part.topic) || ***name == *part.topic);
        if !same_topic {
            topic = Some((&part.topic, ctx.replica_manager.topic(&part.topic)));
        }
        let partition = topic.as_ref().and_then(|(_, partitions)| {
            let partitions = partitions.as_ref()?;
            partitions
                .get(usize::try_from(part.partition).ok()?)?
                .clone()
        });
        let Some(partition) = partition else {
            answered.push(PartFetch::error(
                part.slot,
                ResponseError::NotLeaderOrFollower,
            ));
            continue;
        };
        match partition.read_isolated_now(part.fetch_offset, part.max_bytes, part.read_committed) {
            ReadNow::Done(read) => answered.push(part_fetch(part, &partition, read)),
            ReadNow::NeedsLog => from_log.push((part, partition)),
        }
    }
    if !from_log.is_empty() {
        let reads = from_log.into_iter().map(|(part, partition)| async move {
            let read = partition
                .read_isolated(part.fetch_offset, part.max_bytes, part.read_committed)
                .await;
            part_fetch(part, &partition, read)
        });
        answered.extend(join_all(reads).await);
    }
    answered
}

/// The answer for `part` from `partition`'s read.
fn part_fetch(
    part: &FetchPart,
    partition: &crate::partition::Partition,
    read: Result<FetchRead, ReadError>,
) -> PartFetch {
    match read {
        Ok(read) => PartFetch {
            slot: part.slot,
            error_code: 0,
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
            last_stable_offset: read.last_stable_offset,
            aborted_transactions: read.aborted_transactions,
            records: read.records,
        },
        Err(ReadError::OffsetOutOfRange {
            high_watermark,
            log_start_offset,
            ..
        }) => PartFetch {
            high_watermark,
            log_start_offset,
            last_stable_offset: partition.last_stable_offset(),
            ..PartFetch::error(part.slot, ResponseError::OffsetOutOfRange)
        },
        Err(ReadError::Log(e)) => {
            tracing::error!(topic = %part.topic, partition = part.partition, "fetch read failed: {e}");
            PartFetch::error(part.slot, ResponseError::KafkaStorageError)
        }
        // Its log dir failed (Kafka: an offline partition answers KAFKA_STORAGE_ERROR).
        Err(ReadError::Offline(_)) => PartFetch::error(part.slot, ResponseError::KafkaStorageError),
    }
}

/// Resolves when any fetched partition's high watermark (last stable offset for read_committed)
/// passes its fetch offset, or when the partition moves at all, or after `wait`.
async fn wait_for_data(by_shard: &[Arc<[FetchPart]>], wait: Duration) {
    let waits: Vec<LocalBoxFuture<'static, ()>> = by_shard
        .iter()
        .enumerate()
        .filter(|(_, parts)| !parts.is_empty())
        .map(|(shard, parts)| {
            let watched: Vec<(Arc<str>, i32, i64, bool)> = parts
                .iter()
                .map(|p| {
                    (
                        p.topic.clone(),
                        p.partition,
                        p.fetch_offset,
                        p.read_committed,
                    )
                })
                .collect();
            let future: LocalBoxFuture<'static, ()> =
                Box::pin(shard::invoke_on(shard, move |ctx| {
                    Box::pin(wait_local(ctx, watched, wait))
                }));
            future
        })
        .collect();
    if waits.is_empty() {
        glommio::timer::sleep(wait).await;
        return;
    }
    select_all(waits).await;
}

async fn wait_local(
    ctx: Rc<ShardContext>,
    watched: Vec<(Arc<str>, i32, i64, bool)>,
    wait: Duration,
) {
    let mut receivers = Vec::with_capacity(watched.len());
    for (topic, partition, offset, read_committed) in watched {
        let Some(partition) = ctx.replica_manager.get(&topic, partition) else {
            return;
        };
        // read_committed sees data up to the last stable offset only; the partition wakes
        // waiters when it moves (a durable marker) as when the high watermark moves.
        let visible_end = if read_committed {
            partition.last_stable_offset()
        } else {
            partition.high_watermark()
        };
        if visible_end > offset {
            return;
        }
        receivers.push(partition.wait_for_data(offset));
    }
    let any = async {
        if !receivers.is_empty() {
            let _ = select_all(receivers).await;
        }
    };
    let _ = glommio::timer::timeout(wait, async {
        any.await;
        Ok(())
    })
    .await;
}
