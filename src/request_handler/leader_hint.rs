//! KIP-951 leader hints: `CurrentLeader` per partition and the leaders' `NodeEndpoints` in
//! Produce (v10+, for NOT_LEADER_OR_FOLLOWER) and Fetch (v16+, for NOT_LEADER_OR_FOLLOWER and
//! FENCED_LEADER_EPOCH) responses, so a client can go to the new leader without a Metadata
//! round trip. As Kafka's `KafkaApis.getCurrentLeader`: the leader id and leader epoch of the
//! partition (here: this node and the metadata image's epoch; -1 and -1 for a partition the
//! image does not have), and the endpoint of that leader on the listener the client connected
//! to (Kafka's `getCurrentLeader` / `nodeEndpoints` take `request.context.listenerName`), as
//! Metadata gives out; none when the leader is unknown.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::messages::{fetch_response, produce_response, BrokerId, FetchResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::metadata::MetadataImage;
use crate::shard::ShardContext;

/// The first Produce version with `CurrentLeader` / `NodeEndpoints`.
pub const PRODUCE_MIN_VERSION: i16 = 10;
/// The first Fetch version with `CurrentLeader` / `NodeEndpoints`.
pub const FETCH_MIN_VERSION: i16 = 16;

/// Fills the hints of every Produce partition answered NOT_LEADER_OR_FOLLOWER; the endpoint is
/// this node's advertised address on `listener_name` (the client's listener).
pub fn fill_produce(
    ctx: &ShardContext,
    listener_name: &str,
    version: i16,
    response: &mut ProduceResponse,
) {
    if version < PRODUCE_MIN_VERSION {
        return;
    }
    let image = ctx.metadata();
    let mut leader_known = false;
    for topic in &mut response.responses {
        for partition in &mut topic.partition_responses {
            if partition.error_code != ResponseError::NotLeaderOrFollower.code() {
                continue;
            }
            let (leader_id, leader_epoch) = current_leader(
                ctx,
                &image,
                &topic.topic_id,
                topic.name.as_str(),
                partition.index,
            );
            leader_known |= leader_id >= 0;
            partition.current_leader = produce_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader_id))
                .with_leader_epoch(leader_epoch);
        }
    }
    if leader_known {
        let (host, port) = endpoint(ctx, listener_name);
        response.node_endpoints = vec![produce_response::NodeEndpoint::default()
            .with_node_id(BrokerId(ctx.config.node_id))
            .with_host(host)
            .with_port(port)];
    }
}

/// Fills the hints of every Fetch partition answered NOT_LEADER_OR_FOLLOWER or
/// FENCED_LEADER_EPOCH; the endpoint is this node's advertised address on `listener_name`.
pub fn fill_fetch(
    ctx: &ShardContext,
    listener_name: &str,
    version: i16,
    response: &mut FetchResponse,
) {
    if version < FETCH_MIN_VERSION {
        return;
    }
    let image = ctx.metadata();
    let mut leader_known = false;
    for topic in &mut response.responses {
        for partition in &mut topic.partitions {
            let code = partition.error_code;
            if code != ResponseError::NotLeaderOrFollower.code()
                && code != ResponseError::FencedLeaderEpoch.code()
            {
                continue;
            }
            let (leader_id, leader_epoch) = current_leader(
                ctx,
                &image,
                &topic.topic_id,
                topic.topic.as_str(),
                partition.partition_index,
            );
            leader_known |= leader_id >= 0;
            partition.current_leader = fetch_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(leader_id))
                .with_leader_epoch(leader_epoch);
        }
    }
    if leader_known {
        let (host, port) = endpoint(ctx, listener_name);
        response.node_endpoints = vec![fetch_response::NodeEndpoint::default()
            .with_node_id(BrokerId(ctx.config.node_id))
            .with_host(host)
            .with_port(port)];
    }
}

/// (leader id, leader epoch) of a partition named by id (when not nil) or name.
fn current_leader(
    ctx: &ShardContext,
    image: &MetadataImage,
    topic_id: &Uuid,
    name: &str,
    partition: i32,
) -> (i32, i32) {
    let topic = if topic_id.is_nil() {
        image.topic(name)
    } else {
        image.topic_by_id(topic_id)
    };
    let epoch = topic.and_then(|t| {
        let index = usize::try_from(partition).ok()?;
        t.partitions.get(index).map(|p| p.leader_epoch)
    });
    match epoch {
        Some(epoch) => (ctx.config.node_id, epoch),
        None => (-1, -1),
    }
}

/// This node's advertised endpoint on `listener_name`, the one Metadata gives a client of that
/// listener ([`crate::config::BrokerConfig::advertised_listener`]).
fn endpoint(ctx: &ShardContext, listener_name: &str) -> (StrBytes, i32) {
    let listener = &ctx.config.advertised_listener(listener_name);
    (
        StrBytes::from_string(listener.host.clone()),
        i32::from(listener.port),
    )
}
