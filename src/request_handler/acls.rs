//! CreateAcls (30), DescribeAcls (29) and DeleteAcls (31), as Kafka's `AclApis`: each needs
//! ALTER (create, delete) or DESCRIBE (describe) on the CLUSTER, answers SECURITY_DISABLED
//! when no authorizer is configured, and refuses bad ACLs and filters with INVALID_REQUEST and
//! Kafka's messages. Changes run on shard 0, which stores the new set with the topic metadata
//! (durable before the answer) and publishes it to every shard.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::authorize;
use crate::metadata::AclRecord;
use crate::security::acls;
use crate::security::authorizer::{
    validate_new_acl, AclFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
};
use crate::security::Session;
use crate::shard::{self, ShardContext};

const SECURITY_DISABLED_MESSAGE: &str = "No Authorizer is configured.";

/// Why shard 0 could not store or publish a new ACL set.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error(transparent)]
    Store(#[from] crate::metadata::MetadataError),
    #[error(transparent)]
    Publish(#[from] shard::PublishError),
}

/// Replaces the ACL set on shard 0 with `change(current)` and publishes it; returns what
/// `change` returned besides the set.
async fn change_acls<T, F>(change: F) -> Result<T, String>
where
    F: FnOnce(&[AclRecord]) -> (Vec<AclRecord>, T) + Send + 'static,
    T: Send + 'static,
{
    shard::invoke_on(0, move |ctx| {
        Box::pin(async move {
            let store = ctx
                .topic_store
                .as_ref()
                .expect("shard 0 owns the topic store");
            let current = store.borrow().image().acls.clone();
            let (acls, result) = change(&current);
            let outcome: Result<T, StoreError> = async {
                if *current != acls {
                    store.borrow_mut().set_acls(acls)?;
                    let image = store.borrow().image();
                    shard::publish_metadata(image).await?;
                }
                Ok(result)
            }
            .await;
            outcome.map_err(|e| e.to_string())
        })
    })
    .await
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// CreateAcls v1-3.
pub async fn create_acls(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: CreateAclsRequest,
    _version: i16,
) -> CreateAclsResponse {
    let fail_all = |code: ResponseError, message: &str| {
        let results = request
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
            })
            .collect();
        CreateAclsResponse::default().with_results(results)
    };
    if !authorize::authorize_cluster(&ctx, &session, AclOperation::Alter) {
        return fail_all(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
    }
    if !authorize::enabled(&ctx) {
        return fail_all(ResponseError::SecurityDisabled, SECURITY_DISABLED_MESSAGE);
    }
    let checked: Vec<Result<AclRecord, String>> = request
        .creations
        .iter()
        .map(|c| {
            let acl = AclRecord {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission_type: c.permission_type,
            };
            validate_new_acl(&acl).map(|()| acl)
        })
        .collect();
    let valid: Vec<AclRecord> = checked.iter().filter_map(|c| c.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        change_acls(move |current| (acls::with_created(current, &valid), ())).await
    };
    let results = checked
        .iter()
        .map(|c| match (c, &stored) {
            (Err(message), _) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(message))),
            (Ok(_), Err(message)) => AclCreationResult::default()
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_error_message(Some(str_bytes(message))),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn filter_of(
    resource_type: i8,
    resource_name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission_type: i8,
) -> Result<AclFilter, String> {
    let filter = AclFilter {
        resource_type: ResourceType::from_code(resource_type),
        resource_name: resource_name.as_ref().map(|s| s.to_string()),
        pattern_type: PatternType::from_code(pattern_type),
        principal: principal.as_ref().map(|s| s.to_string()),
        host: host.as_ref().map(|s| s.to_string()),
        operation: AclOperation::from_code(operation),
        permission_type: AclPermissionType::from_code(permission_type),
    };
    match filter.unknown_part() {
        Some(message) => Err(message.to_string()),
        None => Ok(filter),
    }
}

/// DescribeAcls v1-3: the matching ACLs grouped by resource pattern.
pub async fn describe_acls(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: DescribeAclsRequest,
    _version: i16,
) -> DescribeAclsResponse {
    let error = |code: ResponseError, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !authorize::authorize_cluster(&ctx, &session, AclOperation::Describe) {
        return error(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
    }
    if !authorize::enabled(&ctx) {
        return error(
            ResponseError::SecurityDisabled,
            "No Authorizer is configured on the broker",
        );
    }
    let filter = match filter_of(
        request.resource_type_filter,
        &request.resource_name_filter,
        request.pattern_type_filter,
        &request.principal_filter,
        &request.host_filter,
        request.operation,
        request.permission_type,
    ) {
        Ok(filter) => filter,
        Err(message) => return error(ResponseError::InvalidRequest, &message),
    };
    let image = ctx.metadata();
    // The set is sorted by resource type, name and pattern type first: group neighbours.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in image.acls.iter().filter(|a| filter.matches(a)) {
        let same = resources.last().is_some_and(|r| {
            r.resource_type == acl.resource_type
                && r.resource_name.as_str() == acl.resource_name
                && r.pattern_type == acl.pattern_type
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type)
                    .with_resource_name(str_bytes(&acl.resource_name))
                    .with_pattern_type(acl.pattern_type),
            );
        }
        if let Some(resource) = resources.last_mut() {
            resource.acls.push(
                AclDescription::default()
                    .with_principal(str_bytes(&acl.principal))
                    .with_host(str_bytes(&acl.host))
                    .with_operation(acl.operation)
                    .with_permission_type(acl.permission_type),
            );
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

/// DeleteAcls v1-3: per filter, the ACLs it matched (now removed).
pub async fn delete_acls(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: DeleteAclsRequest,
    _version: i16,
) -> DeleteAclsResponse {
    let fail_all = |code: ResponseError, message: &str| {
        let results = request
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
            })
            .collect();
        DeleteAclsResponse::default().with_filter_results(results)
    };
    if !authorize::authorize_cluster(&ctx, &session, AclOperation::Alter) {
        return fail_all(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
    }
    if !authorize::enabled(&ctx) {
        return fail_all(ResponseError::SecurityDisabled, SECURITY_DISABLED_MESSAGE);
    }
    let filters: Vec<Result<AclFilter, String>> = request
        .filters
        .iter()
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let errors: Vec<Option<String>> = filters.iter().map(|f| f.clone().err()).collect();
    let outcome = change_acls(move |current| acls::without_deleted(current, &filters)).await;
    let matched = match outcome {
        Ok(matched) => matched,
        Err(message) => return fail_all(ResponseError::UnknownServerError, &message),
    };
    let results = matched
        .into_iter()
        .zip(errors)
        .map(|(matched, error)| match error {
            Some(message) => DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(&message))),
            None => DeleteAclsFilterResult::default().with_matching_acls(
                matched
                    .iter()
                    .map(|acl| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(acl.resource_type)
                            .with_resource_name(str_bytes(&acl.resource_name))
                            .with_pattern_type(acl.pattern_type)
                            .with_principal(str_bytes(&acl.principal))
                            .with_host(str_bytes(&acl.host))
                            .with_operation(acl.operation)
                            .with_permission_type(acl.permission_type)
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
