//! DescribeProducers (key 61), v0 (KIP-664): the active producers of each requested partition,
//! read on the partition's owning shard (Kafka's `ReplicaManager.activeProducerState`): producer
//! id, epoch, last sequence, last timestamp, the coordinator epoch of its last transaction
//! marker and the first offset of its ongoing transaction (-1 for none). An unknown topic or
//! partition gets UNKNOWN_TOPIC_OR_PARTITION, a partition this shard set does not hold (being
//! opened or deleted) NOT_LEADER_OR_FOLLOWER, as Kafka answers.

use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::*;

use crate::partition::ProducerDescription;
use crate::shard::{self, ShardContext};

pub async fn handle(
    ctx: Rc<ShardContext>,
    request: DescribeProducersRequest,
    _version: i16,
) -> DescribeProducersResponse {
    let image = ctx.metadata();
    let mut response = DescribeProducersResponse::default();
    let mut lookups = Vec::new();
    for (t, topic) in request.topics.into_iter().enumerate() {
        let metadata = image.topic(topic.name.as_str());
        let mut topic_response = TopicResponse::default().with_name(topic.name.clone());
        for (p, &index) in topic.partition_indexes.iter().enumerate() {
            topic_response
                .partitions
                .push(PartitionResponse::default().with_partition_index(index));
            let shard = metadata.and_then(|m| m.shard_of(index));
            let name = metadata.map(|m| m.name.clone());
            lookups.push(async move {
                let result = match (shard, name) {
                    (Some(shard), Some(name)) => {
                        shard::invoke_on(shard, move |ctx| {
                            Box::pin(async move {
                                super::online_partition(&ctx, &name, index)
                                    .map(|partition| partition.describe_producers())
                            })
                        })
                        .await
                    }
                    _ => Err(ResponseError::UnknownTopicOrPartition),
                };
                ((t, p), result)
            });
        }
        response.topics.push(topic_response);
    }
    for ((t, p), result) in join_all(lookups).await {
        let partition = &mut response.topics[t].partitions[p];
        match result {
            Ok(producers) => partition.active_producers = producers.iter().map(state).collect(),
            Err(error) => partition.error_code = error.code(),
        }
    }
    response
}

fn state(producer: &ProducerDescription) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(producer.producer_id))
        .with_producer_epoch(producer.producer_epoch as i32)
        .with_last_sequence(producer.last_sequence)
        .with_last_timestamp(producer.last_timestamp)
        .with_coordinator_epoch(producer.coordinator_epoch)
        .with_current_txn_start_offset(producer.current_txn_start_offset)
}
