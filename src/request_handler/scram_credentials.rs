//! AlterUserScramCredentials (key 51, v0) and DescribeUserScramCredentials (key 50, v0), as on
//! Kafka with KRaft (`ControllerApis` / `ScramControlManager`). Shard 0 checks and stores the
//! credentials in the durable metadata and publishes them to every shard.
//!
//! Per user, in request order of first appearance: a mechanism other than SCRAM-SHA-256/512 is
//! UNSUPPORTED_SASL_MECHANISM ("Unknown SCRAM mechanism"); an empty name or iterations outside
//! 4096-16384 UNACCEPTABLE_CREDENTIAL ("Username must not be empty", "Too few iterations", "Too
//! many iterations"); a user named twice in one request (even for two mechanisms, as Kafka 4.1) DUPLICATE_RESOURCE; deleting a missing
//! credential RESOURCE_NOT_FOUND. A user's alterations apply together or not at all.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::security::scram_credentials::{check_iterations, ScramCredential, ScramMechanism};
use crate::shard::{self, ShardContext};

/// One requested change.
enum Alteration {
    Delete(ScramMechanism),
    Upsert(ScramMechanism, ScramCredential),
}

type Refusal = (ResponseError, String);

pub async fn alter(
    _ctx: Rc<ShardContext>,
    request: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    // Validate everything here; shard 0 then checks existence and stores.
    let mut order: Vec<String> = Vec::new();
    let mut per_user: BTreeMap<String, Result<Vec<Alteration>, Refusal>> = BTreeMap::new();
    let mut seen: BTreeMap<(String, i8), usize> = BTreeMap::new();
    let mut record =
        |user: String,
         mechanism: i8,
         make: &dyn Fn(ScramMechanism) -> Result<Alteration, Refusal>| {
            if !per_user.contains_key(&user) {
                order.push(user.clone());
                per_user.insert(user.clone(), Ok(Vec::new()));
            }
            // Kafka 4.1: a user may appear once per request, whatever the mechanisms.
            let _ = mechanism;
            *seen.entry((user.clone(), 0)).or_default() += 1;
            let entry = per_user.get_mut(&user).expect("inserted above");
            let Ok(list) = entry else { return };
            let outcome = if user.is_empty() {
                Err((
                    ResponseError::UnacceptableCredential,
                    "Username must not be empty".to_string(),
                ))
            } else {
                match ScramMechanism::from_type_id(mechanism) {
                    None => Err((
                        ResponseError::UnsupportedSaslMechanism,
                        "Unknown SCRAM mechanism".to_string(),
                    )),
                    Some(m) => make(m),
                }
            };
            match outcome {
                Ok(alteration) => list.push(alteration),
                Err(refusal) => *entry = Err(refusal),
            }
        };
    for deletion in &request.deletions {
        record(deletion.name.to_string(), deletion.mechanism, &|m| {
            Ok(Alteration::Delete(m))
        });
    }
    for upsertion in &request.upsertions {
        record(upsertion.name.to_string(), upsertion.mechanism, &|m| {
            check_iterations(upsertion.iterations)
                .map_err(|e| (ResponseError::UnacceptableCredential, e.to_string()))?;
            if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
                return Err((
                    ResponseError::UnacceptableCredential,
                    "Salt and salted password must not be empty".to_string(),
                ));
            }
            Ok(Alteration::Upsert(
                m,
                ScramCredential::from_salted_password(
                    m,
                    upsertion.salt.to_vec(),
                    &upsertion.salted_password,
                    upsertion.iterations,
                ),
            ))
        });
    }
    for ((user, _), count) in &seen {
        if *count > 1 {
            per_user.insert(
                user.clone(),
                Err((
                    ResponseError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request".to_string(),
                )),
            );
        }
    }
    let work: Vec<(String, Result<Vec<Alteration>, Refusal>)> = order
        .into_iter()
        .map(|user| {
            let alterations = per_user.remove(&user).unwrap_or(Ok(Vec::new()));
            (user, alterations)
        })
        .collect();
    let outcomes = apply_on_shard_0(work).await;
    let results = outcomes
        .into_iter()
        .map(|(user, outcome)| {
            let mut result =
                AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            if let Err((error, message)) = outcome {
                result = result
                    .with_error_code(error.code())
                    .with_error_message(Some(StrBytes::from_string(message)));
            }
            result
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Applies each user's alterations on shard 0 (persisted, then published).
async fn apply_on_shard_0(
    work: Vec<(String, Result<Vec<Alteration>, Refusal>)>,
) -> Vec<(String, Result<(), Refusal>)> {
    // Alteration holds no Rc: it may cross to shard 0.
    shard::invoke_on(0, move |ctx| {
        Box::pin(async move {
            let store = ctx
                .topic_store
                .as_ref()
                .expect("shard 0 owns the topic store");
            let mut credentials = (*store.borrow().image().scram_credentials).clone();
            let mut outcomes = Vec::with_capacity(work.len());
            let mut changed = false;
            for (user, alterations) in work {
                let outcome = alterations.and_then(|alterations| {
                    let mut mine = credentials.get(&user).cloned().unwrap_or_default();
                    for alteration in alterations {
                        match alteration {
                            Alteration::Delete(m) => {
                                if mine.remove(&m).is_none() {
                                    return Err((
                                        ResponseError::ResourceNotFound,
                                        "Attempt to delete a user credential that does not exist"
                                            .to_string(),
                                    ));
                                }
                            }
                            Alteration::Upsert(m, c) => {
                                mine.insert(m, c);
                            }
                        }
                    }
                    Ok(mine)
                });
                match outcome {
                    Ok(mine) => {
                        tracing::info!(user = %user, mechanisms = ?mine.keys().collect::<Vec<_>>(), "altered SCRAM credentials");
                        if mine.is_empty() {
                            credentials.remove(&user);
                        } else {
                            credentials.insert(user.clone(), mine);
                        }
                        changed = true;
                        outcomes.push((user, Ok(())));
                    }
                    Err(refusal) => outcomes.push((user, Err(refusal))),
                }
            }
            if changed {
                let stored = store.borrow_mut().set_scram_credentials(credentials);
                let published = match stored {
                    Ok(()) => {
                        let image = store.borrow().image();
                        shard::publish_metadata(image)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = published {
                    tracing::warn!("SCRAM credentials not stored or published: {e}");
                    for (_, outcome) in outcomes.iter_mut().filter(|(_, o)| o.is_ok()) {
                        *outcome = Err((ResponseError::KafkaStorageError, e.clone()));
                    }
                }
            }
            outcomes
        })
    })
    .await
}

pub async fn describe(
    ctx: Rc<ShardContext>,
    request: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    let image = ctx.metadata();
    let all = &image.scram_credentials;
    let info = |creds: &BTreeMap<ScramMechanism, ScramCredential>| {
        creds
            .iter()
            .map(|(m, c)| {
                CredentialInfo::default()
                    .with_mechanism(m.type_id())
                    .with_iterations(c.iterations)
            })
            .collect::<Vec<_>>()
    };
    let named: Vec<String> = request
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    let results = if named.is_empty() {
        all.iter()
            .map(|(user, creds)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()))
                    .with_credential_infos(info(creds))
            })
            .collect()
    } else {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for user in &named {
            *counts.entry(user).or_default() += 1;
        }
        let mut done = std::collections::BTreeSet::new();
        named
            .iter()
            .filter(|user| done.insert(user.as_str()))
            .map(|user| {
                let result = DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()));
                if counts[user.as_str()] > 1 {
                    return result
                        .with_error_code(ResponseError::DuplicateResource.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                        ))));
                }
                match all.get(user) {
                    Some(creds) => result.with_credential_infos(info(creds)),
                    None => result
                        .with_error_code(ResponseError::ResourceNotFound.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "Attempt to describe a user credential that does not exist: {user}"
                        )))),
                }
            })
            .collect()
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
