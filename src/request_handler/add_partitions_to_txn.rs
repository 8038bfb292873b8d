//! AddPartitionsToTxn (key 24) v0-5 (Kafka's `handleAddPartitionToTxnRequest`): v0-3 add the
//! partitions of one transaction (from a producer); v4+ carry a batch of transactions, each
//! either added or, with `verify_only` (KIP-890), only checked. A partition that does not
//! exist fails its whole transaction: UNKNOWN_TOPIC_OR_PARTITION for it,
//! OPERATION_NOT_ATTEMPTED for the others.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::*;

use super::transactions::{for_version, on_coordinator, partition_exists};
use crate::shard::ShardContext;

pub async fn handle(
    ctx: Rc<ShardContext>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version < 4 {
        let transaction = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(request.v3_and_below_transactional_id)
            .with_producer_id(request.v3_and_below_producer_id)
            .with_producer_epoch(request.v3_and_below_producer_epoch)
            .with_verify_only(false)
            .with_topics(request.v3_and_below_topics);
        let result = transaction_result(&ctx, transaction, version).await;
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(result.topic_results);
    }
    let mut results = Vec::with_capacity(request.transactions.len());
    for transaction in request.transactions {
        results.push(transaction_result(&ctx, transaction, version).await);
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

/// The result of one transaction of the request.
async fn transaction_result(
    ctx: &Rc<ShardContext>,
    transaction: AddPartitionsToTxnTransaction,
    version: i16,
) -> AddPartitionsToTxnResult {
    let transactional_id = transaction.transactional_id.to_string();
    let partitions: Vec<(String, i32)> = transaction
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
        .collect();
    let missing: Vec<bool> = partitions
        .iter()
        .map(|(topic, partition)| !partition_exists(ctx, topic, *partition))
        .collect();
    let errors: Vec<Option<ResponseError>> = if missing.iter().any(|m| *m) {
        missing
            .iter()
            .map(|m| {
                Some(if *m {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::OperationNotAttempted
                })
            })
            .collect()
    } else {
        let (id, producer_id, epoch) = (
            transactional_id.clone(),
            transaction.producer_id.0,
            transaction.producer_epoch,
        );
        let verify_only = transaction.verify_only;
        let asked = partitions.clone();
        let result = on_coordinator(ctx, &transactional_id, move |ctx| {
            Box::pin(async move {
                let coordinator = &ctx.transaction_coordinator;
                if verify_only {
                    coordinator.verify_partitions(&id, producer_id, epoch, &asked)
                } else {
                    coordinator
                        .add_partitions(&id, producer_id, epoch, &asked)
                        .await
                        .map(|()| vec![None; asked.len()])
                }
            })
        })
        .await;
        match result {
            Ok(errors) => errors,
            Err(error) => vec![Some(for_version(error, version, 2)); partitions.len()],
        }
    };
    AddPartitionsToTxnResult::default()
        .with_transactional_id(transaction.transactional_id)
        .with_topic_results(topic_results(&partitions, &errors))
}

/// Results grouped by topic in request order.
fn topic_results(
    partitions: &[(String, i32)],
    errors: &[Option<ResponseError>],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), error) in partitions.iter().zip(errors) {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(*partition)
            .with_partition_error_code(error.map_or(0, |e| e.code()));
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(result),
            None => topics.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(topic.clone().into()))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    topics
}
