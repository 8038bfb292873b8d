//! The ACL set's changes, sans-io: what CreateAcls adds and what DeleteAcls removes, computed
//! from the current set ([`crate::metadata::MetadataImage::acls`]). Shard 0 stores the result
//! with the topic metadata (`TopicStore::set_acls`: durable in `ringtail-metadata.json`,
//! replayed at start-up) and publishes it to every shard with the next metadata image
//! (`request_handler::acls`).

use crate::metadata::AclRecord;
use crate::security::authorizer::AclFilter;

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
