//! Produce (key 0), v3-13; v0-2 are advertised but answered with UNSUPPORTED_VERSION.
//!
//! The request is split by owning shard. Each shard's part is handed over in request order
//! ([`crate::shard::submit_to`]) and validated and given offsets as soon as it starts, so
//! pipelined requests of one connection are appended in order; the answers are merged once
//! every partition's write (acks=1) or fdatasync (acks=-1) completed.

mod verification;

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{join_all, LocalBoxFuture};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{authorize, Response};
use crate::partition::{AppendError, Appended, Partition, RecordErrorKind};
use crate::protocol::record_batch::{BatchError, Compression, RecordBatchHeader};
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::{self, ShardContext};

/// One partition's records, addressed by its slot in the response.
struct ProducePart {
    slot: (usize, usize),
    topic: String,
    partition: i32,
    records: Option<Bytes>,
}

/// One partition's answer.
struct PartResult {
    slot: (usize, usize),
    error_code: i16,
    error_message: Option<String>,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    /// KIP-467 (Produce v8+): (index in the batch, message) per refused record.
    record_errors: Vec<(i32, String)>,
}

impl PartResult {
    fn error(slot: (usize, usize), error: ResponseError, message: Option<String>) -> PartResult {
        PartResult {
            slot,
            error_code: error.code(),
            error_message: message,
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
        }
    }
}

/// The request's partitions sorted by owning shard, with the answers known up front.
struct Routed {
    /// The response with every partition in place, filled in once all answers are in.
    response: ProduceResponse,
    /// Indexed by shard: the parts that shard appends.
    by_shard: Vec<Vec<ProducePart>>,
    /// Parts answered without an append (invalid acks, unknown topic or partition).
    early: Vec<PartResult>,
}

/// What one shard's append needs besides the records.
#[derive(Clone, Copy)]
struct AppendSettings {
    acks: i16,
    timeout_ms: u64,
    /// zstd needs Produce v7+ (KIP-110).
    allow_zstd: bool,
}

/// Runs the ordered part of a Produce now; the returned future gives the response.
pub async fn dispatch(
    ctx: &Rc<ShardContext>,
    session: &Session,
    request: ProduceRequest,
    version: i16,
) -> LocalBoxFuture<'static, ProduceResponse> {
    let settings = AppendSettings {
        acks: request.acks,
        timeout_ms: request.timeout_ms.max(0) as u64,
        allow_zstd: version >= 7,
    };
    let transactional_id = request.transactional_id.as_ref().map(|id| id.to_string());
    let Routed {
        mut response,
        mut by_shard,
        mut early,
    } = route(ctx, session, request, version);
    early.extend(
        verification::verify_transactional_parts(ctx, transactional_id.as_deref(), &mut by_shard)
            .await,
    );
    let mut pending: Vec<LocalBoxFuture<'static, Vec<PartResult>>> = Vec::new();
    for (shard, parts) in by_shard.into_iter().enumerate() {
        if parts.is_empty() {
            continue;
        }
        if shard == ctx.shard_id {
            pending.push(produce_local(ctx, parts, settings));
        } else {
            pending.push(produce_remote(shard, parts, settings).await);
        }
    }
    let hint_ctx = ctx.clone();
    let listener_name = session.listener_name.clone();
    Box::pin(async move {
        let results = join_all(pending).await.into_iter().flatten().chain(early);
        for result in results {
            let (t, p) = result.slot;
            let partition = &mut response.responses[t].partition_responses[p];
            partition.error_code = result.error_code;
            partition.error_message = result.error_message.map(StrBytes::from_string);
            partition.base_offset = result.base_offset;
            partition.log_append_time_ms = result.log_append_time;
            partition.log_start_offset = result.log_start_offset;
            partition.record_errors = result
                .record_errors
                .into_iter()
                .map(|(batch_index, message)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(batch_index)
                        .with_batch_index_error_message(Some(StrBytes::from_string(message)))
                })
                .collect();
        }
        super::leader_hint::fill_produce(&hint_ctx, &listener_name, version, &mut response);
        response
    })
}

/// Looks up each partition's topic (by id from v13, else by name) and owning shard.
///
/// ACLs (Kafka's `KafkaApis.handleProduceRequest`): a transactional produce needs WRITE on its
/// TRANSACTIONAL_ID (else every partition answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED), each
/// topic WRITE (else TOPIC_AUTHORIZATION_FAILED, before the topic's existence is looked at).
fn route(ctx: &ShardContext, session: &Session, request: ProduceRequest, version: i16) -> Routed {
    let image = ctx.metadata();
    let mut routed = Routed {
        response: ProduceResponse::default(),
        by_shard: (0..ctx.shard_count).map(|_| Vec::new()).collect(),
        early: Vec::new(),
    };
    let valid_acks = matches!(request.acks, -1..=1);
    let transactional_id_denied = request.transactional_id.as_ref().is_some_and(|id| {
        !authorize::authorize(
            ctx,
            session,
            AclOperation::Write,
            ResourceType::TransactionalId,
            id,
        )
    });
    for (topic_index, topic) in request.topic_data.into_iter().enumerate() {
        let metadata = if version >= 13 {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.name.as_str())
        };
        let denied = if transactional_id_denied {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else {
            let name = metadata.map_or(topic.name.as_str(), |m| m.name.as_str());
            let known_or_named = metadata.is_some() || version < 13;
            (known_or_named
                && !authorize::authorize_topic_cached(ctx, session, AclOperation::Write, name))
            .then_some(ResponseError::TopicAuthorizationFailed)
        };
        let unknown = if version >= 13 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut topic_response = TopicProduceResponse::default()
            .with_name(topic.name.clone())
            .with_topic_id(topic.topic_id);
        for (partition_index, data) in topic.partition_data.into_iter().enumerate() {
            let slot = (topic_index, partition_index);
            topic_response
                .partition_responses
                .push(PartitionProduceResponse::default().with_index(data.index));
            let shard = metadata.and_then(|m| m.shard_of(data.index));
            if let Some(error) = denied {
                routed.early.push(PartResult::error(slot, error, None));
                continue;
            }
            match (valid_acks, metadata, shard) {
                (false, _, _) => routed.early.push(PartResult::error(
                    slot,
                    ResponseError::InvalidRequiredAcks,
                    None,
                )),
                (true, Some(metadata), Some(shard)) => routed.by_shard[shard].push(ProducePart {
                    slot,
                    topic: metadata.name.clone(),
                    partition: data.index,
                    records: data.records,
                }),
                (true, _, _) => routed.early.push(PartResult::error(slot, unknown, None)),
            }
        }
        routed.response.responses.push(topic_response);
    }
    routed
}

/// Hands `parts` to `shard` in request order; the future gives their results, or
/// NOT_LEADER_OR_FOLLOWER for each when the shard is gone.
async fn produce_remote(
    shard: usize,
    parts: Vec<ProducePart>,
    settings: AppendSettings,
) -> LocalBoxFuture<'static, Vec<PartResult>> {
    let slots: Vec<(usize, usize)> = parts.iter().map(|p| p.slot).collect();
    let reply = shard::submit_to(shard, move |ctx| produce_local(&ctx, parts, settings)).await;
    Box::pin(async move {
        reply.await.unwrap_or_else(|_| {
            let error = ResponseError::NotLeaderOrFollower;
            slots
                .into_iter()
                .map(|s| PartResult::error(s, error, None))
                .collect()
        })
    })
}

/// A part appended (or found a duplicate), waiting for its write or flush.
struct Wait {
    result: PartResult,
    partition: Rc<Partition>,
    last_offset: i64,
}

/// Appends `parts` (all owned by this shard) now and returns a future of their results.
fn produce_local(
    ctx: &ShardContext,
    parts: Vec<ProducePart>,
    settings: AppendSettings,
) -> LocalBoxFuture<'static, Vec<PartResult>> {
    let now_ms = now_ms();
    let mut results = Vec::with_capacity(parts.len());
    let mut waits: Vec<Wait> = Vec::new();
    for part in parts {
        match append_part(ctx, part, settings, now_ms) {
            Ok(wait) => waits.push(wait),
            Err(result) => results.push(result),
        }
    }
    Box::pin(async move {
        if settings.acks == 0 {
            return results;
        }
        let durable = settings.acks == -1;
        let waited = join_all(
            waits
                .into_iter()
                .map(|wait| wait_for(wait, durable, settings.timeout_ms)),
        )
        .await;
        results.extend(waited);
        results
    })
}

/// Validates and appends one part; `Err` is its answer when nothing was appended.
fn append_part(
    ctx: &ShardContext,
    part: ProducePart,
    settings: AppendSettings,
    now_ms: i64,
) -> Result<Wait, PartResult> {
    let Some(partition) = ctx.replica_manager.get(&part.topic, part.partition) else {
        // Not opened: KAFKA_STORAGE_ERROR when its log dir is offline (an offline partition
        // that is open answers it from its append).
        let error = super::online_partition(ctx, &part.topic, part.partition)
            .err()
            .unwrap_or(ResponseError::NotLeaderOrFollower);
        return Err(PartResult::error(part.slot, error, None));
    };
    let records = part.records.unwrap_or_default();
    let in_sync = if settings.acks == -1 {
        partition.check_min_insync_replicas(ctx.config.node_id)
    } else {
        Ok(())
    };
    let appended = in_sync
        .and_then(|()| check_codec(&records, settings.allow_zstd))
        .and_then(|()| partition.append(&records, now_ms));
    let (base_offset, last_offset, log_append_time) = match appended {
        Ok(Appended::New {
            base_offset,
            last_offset,
            log_append_time,
        }) => (base_offset, last_offset, log_append_time),
        Ok(Appended::Duplicate {
            base_offset,
            last_offset,
        }) => {
            tracing::debug!(topic = %part.topic, partition = part.partition, base_offset, "duplicate batch from idempotent producer");
            (base_offset, last_offset, -1)
        }
        Err(e) => {
            tracing::warn!(topic = %part.topic, partition = part.partition, "produce rejected: {e}");
            let mut result = PartResult::error(part.slot, append_error_code(&e), error_message(&e));
            if let AppendError::RecordErrors { record_errors, .. } = e {
                result.log_start_offset = partition.log_start_offset();
                result.record_errors = record_errors;
            }
            return Err(result);
        }
    };
    Ok(Wait {
        result: PartResult {
            slot: part.slot,
            error_code: 0,
            error_message: None,
            base_offset,
            log_append_time,
            log_start_offset: partition.log_start_offset(),
            record_errors: Vec::new(),
        },
        partition,
        last_offset,
    })
}

/// Waits until the part is written (and flushed when `durable`), at most `timeout_ms`
/// (REQUEST_TIMED_OUT after); a storage failure is KAFKA_STORAGE_ERROR.
async fn wait_for(wait: Wait, durable: bool, timeout_ms: u64) -> PartResult {
    let Wait {
        result,
        partition,
        last_offset,
    } = wait;
    let written = async {
        partition.wait_written(last_offset).await?;
        if durable {
            partition.wait_durable(last_offset).await?;
        }
        Ok::<(), crate::partition::StorageError>(())
    };
    match glommio::timer::timeout(Duration::from_millis(timeout_ms.max(1)), async {
        Ok(written.await)
    })
    .await
    {
        Ok(Ok(())) => result,
        Ok(Err(e)) => PartResult::error(
            result.slot,
            ResponseError::KafkaStorageError,
            Some(e.to_string()),
        ),
        Err(_) => PartResult::error(result.slot, ResponseError::RequestTimedOut, None),
    }
}

/// zstd needs Produce v7+ (KIP-110): older requests get UNSUPPORTED_COMPRESSION_TYPE.
fn check_codec(records: &[u8], allow_zstd: bool) -> Result<(), AppendError> {
    if allow_zstd {
        return Ok(());
    }
    match RecordBatchHeader::parse(records) {
        Ok(header) if header.compression() == Some(Compression::Zstd) => {
            Err(AppendError::InvalidBatch(BatchError::UnknownCompression {
                codec: 4,
            }))
        }
        _ => Ok(()),
    }
}

/// Kafka's error code for each way an append fails (`ReplicaManager.appendRecords` mapping).
pub(super) fn append_error_code(error: &AppendError) -> ResponseError {
    match error {
        AppendError::InvalidBatch(batch) => match batch {
            BatchError::Truncated { .. }
            | BatchError::InvalidLength { .. }
            | BatchError::CrcMismatch { .. } => ResponseError::CorruptMessage,
            // Produce v3+ carries magic-2 batches only: Kafka's ProduceRequest.validateRecords
            // throws InvalidRecordException for anything else.
            BatchError::UnsupportedMagic { .. } => ResponseError::InvalidRecord,
            BatchError::UnknownCompression { .. } => ResponseError::UnsupportedCompressionType,
            BatchError::RecordCountMismatch { .. } => ResponseError::InvalidRecord,
            BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        },
        AppendError::EmptyRecords | AppendError::TrailingBytes(_) => ResponseError::CorruptMessage,
        AppendError::ControlBatch { .. } => ResponseError::InvalidRecord,
        AppendError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        AppendError::TransactionCoordinatorFenced { .. } => {
            ResponseError::TransactionCoordinatorFenced
        }
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        AppendError::Offline(_) => ResponseError::KafkaStorageError,
        AppendError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        AppendError::RecordErrors { kind, .. } => match kind {
            RecordErrorKind::InvalidRecord => ResponseError::InvalidRecord,
            RecordErrorKind::InvalidTimestamp => ResponseError::InvalidTimestamp,
        },
        AppendError::DecompressedTooLarge { .. } | AppendError::RecordTooLarge { .. } => {
            ResponseError::MessageTooLarge
        }
        AppendError::Undecodable(_) => ResponseError::CorruptMessage,
    }
}

/// The `error_message` of a refused part. Kafka sends one only for record validation errors
/// (`ReplicaManager`: `hasCustomErrorMessage`), so NOT_ENOUGH_REPLICAS goes without; the other
/// refusals keep the reason, which helps and breaks no client.
fn error_message(error: &AppendError) -> Option<String> {
    match error {
        AppendError::NotEnoughReplicas { .. } => None,
        other => Some(other.to_string()),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Answers a Produce v0-2 request with UNSUPPORTED_VERSION for every partition
/// ([`ringtail_protocol::produce_legacy`]); a malformed one closes the connection.
pub fn unsupported_legacy_version(frame: &Bytes, version: i16, correlation_id: i32) -> Response {
    match ringtail_protocol::produce_legacy::unsupported_version_response(
        frame,
        version,
        correlation_id,
    ) {
        Some(out) => {
            tracing::warn!("Produce v{version} refused with UNSUPPORTED_VERSION (v3+ is required)");
            Response::Frame(out)
        }
        None => Response::Close(super::CloseReason::MalformedLegacyProduce { version }),
    }
}
