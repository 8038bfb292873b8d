//! EndTxn (key 26) v0-5 (Kafka's `handleEndTxnRequest`): commit or abort the ongoing
//! transaction; answered once PrepareCommit/PrepareAbort is durable in `__transaction_state`,
//! the markers follow. Ringtail finalizes no `transaction.version`, so clients use transaction
//! version 0 semantics (no epoch bump per transaction); v5 answers the unchanged producer id and
//! epoch.

use std::rc::Rc;

use kafka_protocol::messages::*;

use super::transactions::{for_version, on_coordinator};
use crate::shard::ShardContext;
use crate::transaction_coordinator::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

pub async fn handle(ctx: Rc<ShardContext>, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = request.transactional_id.to_string();
    let (producer_id, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    let transactional_id = id.clone();
    let result = on_coordinator(&ctx, &transactional_id, move |ctx| {
        Box::pin(async move {
            ctx.transaction_coordinator
                .end_transaction(&id, producer_id, epoch, commit)
                .await
        })
    })
    .await;
    match result {
        Ok(()) => EndTxnResponse::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(error) => EndTxnResponse::default()
            .with_error_code(for_version(error, version, 2).code())
            .with_producer_id(ProducerId(NO_PRODUCER_ID))
            .with_producer_epoch(NO_PRODUCER_EPOCH),
    }
}
