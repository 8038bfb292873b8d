//! Shared by the transaction APIs (issue 10): routing a request to the shard coordinating its
//! transactional id, the transactional InitProducerId, the produce-path verification (KIP-890
//! part 1) and the version-dependent error mapping of Kafka's `KafkaApis`.

use std::rc::Rc;

use futures::future::LocalBoxFuture;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::group_coordinator::OFFSETS_TOPIC_NAME;
use crate::partition::TxnMarker;
use crate::shard::{context, invoke_on, ShardContext};
use crate::transaction_coordinator::{
    MarkerRequest, TxnServices, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

/// Runs `f` with the transaction coordinator of the shard owning `transactional_id`.
pub async fn on_coordinator<R, F>(ctx: &ShardContext, transactional_id: &str, f: F) -> R
where
    F: FnOnce(Rc<ShardContext>) -> LocalBoxFuture<'static, R> + Send + 'static,
    R: Send + 'static,
{
    let target = ctx.transaction_coordinator.shard_for(transactional_id);
    invoke_on(target, f).await
}

/// PRODUCER_FENCED as clients of `version` know it: versions before `fenced_since` only know
/// INVALID_PRODUCER_EPOCH (Kafka's `KafkaApis`: InitProducerId < 4, AddPartitionsToTxn < 2,
/// AddOffsetsToTxn < 2, EndTxn < 2).
pub fn for_version(error: ResponseError, version: i16, fenced_since: i16) -> ResponseError {
    if error == ResponseError::ProducerFenced && version < fenced_since {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}

/// InitProducerId with a transactional id (Kafka's `handleInitProducerIdRequest` and
/// `TransactionCoordinator.handleInitProducerId`): a producer id and epoch once the
/// transactional id's new state is durable; -1/-1 with the error otherwise.
pub async fn init_producer_id(
    ctx: Rc<ShardContext>,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default();
    let expected = match (request.producer_id.0, request.producer_epoch) {
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => Ok(None),
        (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => Err(ResponseError::InvalidRequest),
        (producer_id, epoch) => Ok(Some((producer_id, epoch))),
    };
    let timeout = request.transaction_timeout_ms;
    let result = match expected {
        Err(error) => Err(error),
        Ok(expected) => {
            let id = transactional_id.clone();
            on_coordinator(&ctx, &transactional_id, move |ctx| {
                Box::pin(async move {
                    ctx.transaction_coordinator
                        .init_producer_id(&id, timeout, expected)
                        .await
                })
            })
            .await
        }
    };
    let response = InitProducerIdResponse::default();
    match result {
        Ok((producer_id, epoch)) => response
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(error) => response
            .with_error_code(for_version(error, version, 4).code())
            .with_producer_id(ProducerId(NO_PRODUCER_ID))
            .with_producer_epoch(NO_PRODUCER_EPOCH),
    }
}

/// The produce-path verification (KIP-890 part 1) of one partition of a transactional batch
/// when the partition has no ongoing transaction of `producer_id` yet: asks the coordinator of
/// `transactional_id` whether the partition was added to the transaction. Errors are the
/// Produce response's (INVALID_TXN_STATE when not added, INVALID_PRODUCER_EPOCH when fenced;
/// see `TransactionCoordinator::verify_partition`).
pub async fn verify_partition(
    ctx: &ShardContext,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), ResponseError> {
    let (id, topic) = (transactional_id.to_string(), topic.to_string());
    on_coordinator(ctx, transactional_id, move |ctx| {
        Box::pin(async move {
            ctx.transaction_coordinator.verify_partition(
                &id,
                producer_id,
                producer_epoch,
                &topic,
                partition,
            )
        })
    })
    .await
}

/// Whether `topic`-`partition` exists for a transaction: a topic of the image, or a
/// `__consumer_offsets` partition (kept by the group coordinators, not in the image).
pub fn partition_exists(ctx: &ShardContext, topic: &str, partition: i32) -> bool {
    if topic == crate::group_coordinator::OFFSETS_TOPIC_NAME {
        return (0..ctx.config.offsets_topic_num_partitions).contains(&partition);
    }
    ctx.metadata()
        .topic(topic)
        .is_some_and(|t| t.shard_of(partition).is_some())
}

/// The shard-mesh services the transaction coordinator needs (it cannot reach `shard` itself):
/// producer ids from shard 0 (`ShardContext::allocate_producer_id`) and markers written on the
/// shard owning each partition.
pub fn transaction_services() -> TxnServices {
    TxnServices {
        write_marker: Rc::new(|request: MarkerRequest| Box::pin(write_txn_marker(request))),
        allocate_producer_id: Rc::new(|| {
            Box::pin(invoke_on(0, |ctx| {
                Box::pin(async move { ctx.allocate_producer_id() })
            }))
        }),
    }
}

/// One marker on the shard owning its partition (Kafka's WriteTxnMarkers, without the network
/// hop); Ok once durable. A `__consumer_offsets` partition goes to the group coordinator there
/// (which applies or drops the pending transactional offsets), any other to the partition.
/// UNKNOWN_TOPIC_OR_PARTITION: the partition no longer exists.
async fn write_txn_marker(request: MarkerRequest) -> Result<(), ResponseError> {
    let ctx = context();
    let marker = TxnMarker {
        producer_id: request.producer_id,
        producer_epoch: request.producer_epoch,
        coordinator_epoch: request.coordinator_epoch,
        commit: request.commit,
    };
    let now_ms = crate::group_coordinator::now_ms();
    if request.topic == OFFSETS_TOPIC_NAME {
        if !partition_exists(&ctx, &request.topic, request.partition) {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        let partition = request.partition;
        let target = partition as usize % ctx.shard_count;
        return invoke_on(target, move |ctx| {
            Box::pin(async move {
                ctx.group_coordinator
                    .write_txn_marker(partition, marker, now_ms)
                    .await
            })
        })
        .await;
    }
    let Some(target) = ctx
        .metadata()
        .topic(&request.topic)
        .and_then(|t| t.shard_of(request.partition))
    else {
        return Err(ResponseError::UnknownTopicOrPartition);
    };
    invoke_on(target, move |ctx| {
        Box::pin(async move {
            let partition = ctx
                .replica_manager
                .get(&request.topic, request.partition)
                // In the image but not open here yet (or being deleted): retried; once the
                // image no longer has it, the marker is dropped above.
                .ok_or(ResponseError::NotLeaderOrFollower)?;
            partition
                .write_txn_marker(marker, now_ms)
                .await
                .map(|_offset| ())
                .map_err(|error| {
                    tracing::debug!(topic = %request.topic, partition = request.partition, %error, "transaction marker refused");
                    super::produce::append_error_code(&error)
                })
        })
    })
    .await
}
