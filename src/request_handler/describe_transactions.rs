//! DescribeTransactions (key 65) v0 (KIP-664): each transactional id answered by its
//! coordinator shard, in request order; TRANSACTIONAL_ID_NOT_FOUND for an unknown id.

use std::rc::Rc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::transactions::on_coordinator;
use crate::shard::ShardContext;

pub async fn handle(
    ctx: Rc<ShardContext>,
    request: DescribeTransactionsRequest,
    _version: i16,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for transactional_id in request.transactional_ids {
        let id = transactional_id.to_string();
        let lookup = id.clone();
        let described = on_coordinator(&ctx, &id, move |ctx| {
            Box::pin(async move { ctx.transaction_coordinator.describe(&lookup) })
        })
        .await;
        let state = TransactionState::default().with_transactional_id(transactional_id);
        states.push(match described {
            Err(error) => state.with_error_code(error.code()),
            Ok(summary) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, partition) in summary.partitions {
                    match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
                        Some(t) => t.partitions.push(partition),
                        None => topics.push(
                            TopicData::default()
                                .with_topic(TopicName(topic.into()))
                                .with_partitions(vec![partition]),
                        ),
                    }
                }
                state
                    .with_producer_id(ProducerId(summary.producer_id))
                    .with_producer_epoch(summary.producer_epoch)
                    .with_transaction_state(StrBytes::from_static_str(summary.state.name()))
                    .with_transaction_timeout_ms(summary.transaction_timeout_ms)
                    .with_transaction_start_time_ms(summary.start_timestamp_ms)
                    .with_topics(topics)
            }
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
