//! ListTransactions (key 66) v0-2 (KIP-664; v1 `duration_filter`, KIP-994; v2
//! `transactional_id_pattern`, KIP-1152): every shard's transactional ids, filtered by state,
//! producer id, minimum running time and a Java-style whole-match regular expression. Unknown
//! state names are answered in `unknown_state_filters` (Kafka's `listTransactionStates`).

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::shard::{invoke_on, ShardContext};
use crate::transaction_coordinator::TransactionStatus;

/// Every state a filter may name (Kafka's `TransactionState.fromName`).
const STATES: [TransactionStatus; 8] = [
    TransactionStatus::Empty,
    TransactionStatus::Ongoing,
    TransactionStatus::PrepareCommit,
    TransactionStatus::PrepareAbort,
    TransactionStatus::CompleteCommit,
    TransactionStatus::CompleteAbort,
    TransactionStatus::Dead,
    TransactionStatus::PrepareEpochFence,
];

pub async fn handle(
    ctx: Rc<ShardContext>,
    request: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in &request.state_filters {
        match STATES.iter().find(|s| s.name() == name.as_str()) {
            Some(state) => states.push(*state),
            None => unknown.push(name.clone()),
        }
    }
    let response = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    let pattern = match request.transactional_id_pattern.as_deref() {
        Some(pattern) if version >= 2 && !pattern.is_empty() => {
            match regex::Regex::new(&format!("^(?:{pattern})$")) {
                Ok(regex) => Some(regex),
                Err(_) => {
                    return response.with_error_code(ResponseError::InvalidRegularExpression.code())
                }
            }
        }
        _ => None,
    };
    // Kafka: with a state filter naming only unknown states, nothing matches.
    if !request.state_filters.is_empty() && states.is_empty() {
        return response;
    }
    let producer_ids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let mut listed = Vec::new();
    for shard in 0..ctx.shard_count {
        let (producer_ids, states) = (producer_ids.clone(), states.clone());
        let result = invoke_on(shard, move |ctx| {
            Box::pin(async move {
                ctx.transaction_coordinator
                    .list(&producer_ids, &states, duration)
            })
        })
        .await;
        match result {
            Ok(summaries) => listed.extend(summaries),
            Err(error) => return response.with_error_code(error.code()),
        }
    }
    let transaction_states = listed
        .into_iter()
        .filter(|s| {
            pattern
                .as_ref()
                .is_none_or(|p| p.is_match(&s.transactional_id))
        })
        .map(|s| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(s.transactional_id.into()))
                .with_producer_id(ProducerId(s.producer_id))
                .with_transaction_state(StrBytes::from_static_str(s.state.name()))
        })
        .collect();
    response.with_transaction_states(transaction_states)
}
