//! AddOffsetsToTxn (key 25) v0-4 (Kafka's `handleAddOffsetsToTxnRequest`): adds the group's
//! `__consumer_offsets` partition to the transaction, so TxnOffsetCommit may write there and
//! the commit/abort marker reaches the group coordinator.

use std::rc::Rc;

use kafka_protocol::messages::*;

use super::transactions::{for_version, on_coordinator};
use crate::group_coordinator::{offsets_partition_for, OFFSETS_TOPIC_NAME};
use crate::shard::ShardContext;

pub async fn handle(
    ctx: Rc<ShardContext>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let partition =
        offsets_partition_for(&request.group_id, ctx.config.offsets_topic_num_partitions);
    let id = request.transactional_id.to_string();
    let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
    let transactional_id = id.clone();
    let result = on_coordinator(&ctx, &transactional_id, move |ctx| {
        Box::pin(async move {
            ctx.transaction_coordinator
                .add_partitions(
                    &id,
                    producer_id,
                    epoch,
                    &[(OFFSETS_TOPIC_NAME.to_string(), partition)],
                )
                .await
        })
    })
    .await;
    AddOffsetsToTxnResponse::default().with_error_code(
        result
            .err()
            .map_or(0, |e| for_version(e, version, 2).code()),
    )
}
