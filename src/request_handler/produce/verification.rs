//! Produce-path verification of transactional batches (KIP-890 part 1, Kafka's
//! `ReplicaManager.appendRecords` with `transaction.partition.verification.enable`): a
//! transactional batch for a partition where its producer has no ongoing transaction yet is
//! appended only if the transaction coordinator says the partition was added to the
//! transaction (AddPartitionsToTxn); otherwise the partition is answered with the
//! coordinator's error (INVALID_TXN_STATE when not added, INVALID_PRODUCER_EPOCH when fenced,
//! NOT_ENOUGH_REPLICAS, retriable, while the coordinator is busy). Only the first batch header
//! of each partition is read; no record is decoded.

use kafka_protocol::error::ResponseError;

use super::{PartResult, ProducePart};
use crate::protocol::record_batch::RecordBatchHeader;
use crate::shard::{invoke_on, ShardContext};

/// A transactional part to check: index in its shard's list, producer id and epoch.
struct Candidate {
    shard: usize,
    index: usize,
    producer_id: i64,
    producer_epoch: i16,
}

/// Removes from `by_shard` the transactional parts that fail verification and returns their
/// answers. `transactional_id` is the request's; without one nothing is checked (the append
/// itself refuses what it must).
pub(super) async fn verify_transactional_parts(
    ctx: &ShardContext,
    transactional_id: Option<&str>,
    by_shard: &mut [Vec<ProducePart>],
) -> Vec<PartResult> {
    let Some(transactional_id) = transactional_id else {
        return Vec::new();
    };
    if !ctx.config.transaction_partition_verification_enable {
        return Vec::new();
    }
    let mut candidates = Vec::new();
    for (shard, parts) in by_shard.iter().enumerate() {
        for (index, part) in parts.iter().enumerate() {
            let header = part
                .records
                .as_ref()
                .and_then(|records| RecordBatchHeader::parse(records).ok());
            if let Some(header) = header.filter(|h| h.is_transactional() && !h.is_control()) {
                candidates.push(Candidate {
                    shard,
                    index,
                    producer_id: header.producer_id,
                    producer_epoch: header.producer_epoch,
                });
            }
        }
    }
    if candidates.is_empty() {
        return Vec::new();
    }
    // Which candidates already have an ongoing transaction on their partition (one hop per
    // shard involved).
    let mut ongoing = vec![false; candidates.len()];
    for shard in 0..by_shard.len() {
        let asked: Vec<(usize, String, i32, i64)> = candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.shard == shard)
            .map(|(i, c)| {
                let part = &by_shard[shard][c.index];
                (i, part.topic.clone(), part.partition, c.producer_id)
            })
            .collect();
        if asked.is_empty() {
            continue;
        }
        let answers = invoke_on(shard, move |ctx| {
            Box::pin(async move {
                asked
                    .into_iter()
                    .map(|(i, topic, partition, producer_id)| {
                        let has = ctx
                            .replica_manager
                            .get(&topic, partition)
                            .is_some_and(|p| p.has_ongoing_transaction(producer_id));
                        (i, has)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await;
        for (i, has) in answers {
            ongoing[i] = has;
        }
    }
    let mut refused: Vec<(usize, usize, ResponseError)> = Vec::new();
    for (candidate, ongoing) in candidates.iter().zip(ongoing) {
        if ongoing {
            continue;
        }
        let part = &by_shard[candidate.shard][candidate.index];
        let verified = super::super::transactions::verify_partition(
            ctx,
            transactional_id,
            candidate.producer_id,
            candidate.producer_epoch,
            &part.topic,
            part.partition,
        )
        .await;
        if let Err(error) = verified {
            tracing::debug!(topic = %part.topic, partition = part.partition, transactional_id, %error, "transactional produce refused by verification");
            refused.push((candidate.shard, candidate.index, error));
        }
    }
    // Remove from the back so the indexes stay valid.
    refused.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)));
    refused
        .into_iter()
        .map(|(shard, index, error)| {
            let part = by_shard[shard].remove(index);
            PartResult::error(part.slot, error, None)
        })
        .collect()
}
