//! The ACL set's changes, sans-io: what CreateAcls adds and what DeleteAcls removes, computed
//! from the current set ([`crate::metadata::MetadataImage::acls`]). Shard 0 stores the result
//! with the topic metadata (`crate::metadata::TopicStore::set_acls`: durable in `ringtail-metadata.json`,
//! replayed at start-up) and publishes it to every shard with the next metadata image
//! (`request_handler::acls`).

use serde::{Deserialize, Serialize};

use crate::security::authorizer::AclFilter;

/// One ACL as stored, Kafka's KRaft `AccessControlEntryRecord` without its id: the codes are
/// Kafka's (`ResourceType`, `PatternType`, `AclOperation`, `AclPermissionType` `code()`), the
/// principal is `Type:name` (`User:*` for everyone), the host an IP address or `*`. Validated
/// by `security::acls` before it is stored; the set has no duplicates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclRecord {
    /// Kafka's `ResourceType` code: 2 TOPIC, 3 GROUP, 4 CLUSTER, 5 TRANSACTIONAL_ID, ...
    pub resource_type: i8,
    /// The resource name, `*` (LITERAL) for every resource of the type.
    pub resource_name: String,
    /// Kafka's `PatternType` code: 3 LITERAL, 4 PREFIXED.
    pub pattern_type: i8,
    /// `User:alice`, `User:*`.
    pub principal: String,
    /// A client IP address, or `*`.
    pub host: String,
    /// Kafka's `AclOperation` code (2 ALL, 3 READ, ...).
    pub operation: i8,
    /// Kafka's `AclPermissionType` code: 2 DENY, 3 ALLOW.
    pub permission_type: i8,
}

/// The set after adding `new` (already validated) to `current`; an ACL already there is
/// not added twice (Kafka answers success for it, as `AclControlManager.createAcls`).
pub fn with_created(current: &[AclRecord], new: &[AclRecord]) -> Vec<AclRecord> {
    let mut acls: Vec<AclRecord> = current.to_vec();
    acls.extend(new.iter().cloned());
    acls.sort();
    acls.dedup();
    acls
}

/// The set after DeleteAcls with `filters`, and for each filter the ACLs it matched (Kafka's
/// `AclControlManager.deleteAcls`: every ACL matching any filter is removed, and each
/// filter reports every ACL it matched, so one ACL can appear under two filters). A filter
/// given as `Err` (refused: INVALID_REQUEST) matches nothing.
pub fn without_deleted(
    current: &[AclRecord],
    filters: &[Result<AclFilter, String>],
) -> (Vec<AclRecord>, Vec<Vec<AclRecord>>) {
    let matched: Vec<Vec<AclRecord>> = filters
        .iter()
        .map(|filter| match filter {
            Ok(filter) => current
                .iter()
                .filter(|acl| filter.matches(acl))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    let remaining = current
        .iter()
        .filter(|acl| !matched.iter().any(|m| m.contains(acl)))
        .cloned()
        .collect();
    (remaining, matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::authorizer::*;

    fn acl(name: &str, principal: &str) -> AclRecord {
        AclRecord {
            resource_type: ResourceType::Topic.code(),
            resource_name: name.into(),
            pattern_type: PatternType::Literal.code(),
            principal: principal.into(),
            host: "*".into(),
            operation: AclOperation::Read.code(),
            permission_type: AclPermissionType::Allow.code(),
        }
    }

    fn by_principal(principal: &str) -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: Some(principal.into()),
            host: None,
            operation: AclOperation::Any,
            permission_type: AclPermissionType::Any,
        }
    }

    #[test]
    fn create_is_idempotent_and_delete_reports_per_filter() {
        let set = with_created(&[], &[acl("a", "User:x"), acl("b", "User:y")]);
        let again = with_created(&set, &[acl("a", "User:x")]);
        assert_eq!(again, set);
        let mut any = by_principal("User:x");
        any.principal = None;
        let (rest, matched) = without_deleted(
            &set,
            &[
                Ok(by_principal("User:x")),
                Ok(any),
                Err("Unknown patternFilter.".into()),
            ],
        );
        assert!(rest.is_empty());
        assert_eq!(matched[0], vec![acl("a", "User:x")]);
        assert_eq!(matched[1].len(), 2);
        assert!(matched[2].is_empty());
    }
}
