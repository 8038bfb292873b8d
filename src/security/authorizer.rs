//! Kafka's ACL model and its authorization rule, sans-io: resource types, pattern types,
//! operations with their implications, and the decision of Kafka's KRaft `StandardAuthorizer`
//! (`StandardAuthorizerData.authorize` / `findAclRule` / `findResult`):
//!
//! 1. a principal in `super.users` is allowed everything;
//! 2. the ACLs that apply to a resource are the LITERAL ones with its exact name, the LITERAL
//!    `*` (wildcard) ones and the PREFIXED ones whose name is a prefix of it;
//! 3. of those, an ACL matches the request when its principal is the request's or `User:*`, its
//!    host is `*` or the client's IP address, and its operation is the requested one or ALL; an
//!    ALLOW ACL for READ, WRITE, DELETE or ALTER also allows DESCRIBE, and one for ALTER_CONFIGS
//!    also allows DESCRIBE_CONFIGS (DENY ACLs imply nothing);
//! 4. a matching DENY wins over any ALLOW; else a matching ALLOW allows;
//! 5. else, if no ACL at all applies to the resource (whatever its principal, host or
//!    operation), `allow.everyone.if.no.acl.found` decides; otherwise the request is denied.
//!
//! Filters (DescribeAcls, DeleteAcls) follow Kafka's `AclBindingFilter.matches`: ANY matches
//! every value, MATCH (pattern type) matches every pattern that applies to the named resource.
//!
//! The stored form of an ACL is [`crate::security::acls::AclRecord`] (Kafka's codes).

use std::collections::HashMap;

pub use crate::config::AuthorizerConfig;
use crate::security::acls::AclRecord;
use crate::security::KafkaPrincipal;

/// Kafka's `ResourcePattern.WILDCARD_RESOURCE`: a LITERAL ACL with this name applies to every
/// resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// Kafka's `AclEntry.WILDCARD_HOST`.
pub const WILDCARD_HOST: &str = "*";
/// Kafka's wildcard principal (`StandardAuthorizerData.WILDCARD_KAFKA_PRINCIPAL`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The only name of the CLUSTER resource (Kafka's `Resource.CLUSTER_NAME`).
pub const CLUSTER_NAME: &str = "kafka-cluster";

macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:expr, $text:expr;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i8)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $code,)*
        }

        impl $name {
            /// The value of Kafka's `code()`; an unknown code is `Unknown` (`fromCode`).
            pub fn from_code(code: i8) -> $name {
                match code {
                    $($code => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }

            /// Kafka's code.
            pub fn code(self) -> i8 {
                self as i8
            }

            /// Kafka's upper-case name (`TOPIC`, `LITERAL`, `READ`, `ALLOW`).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum! {
    /// Kafka's `org.apache.kafka.common.resource.ResourceType`.
    ResourceType {
        /// Not a type Kafka knows.
        Unknown = 0, "UNKNOWN";
        /// Filters only: every type.
        Any = 1, "ANY";
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster (named [`CLUSTER_NAME`]).
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token (stored as Kafka does; Ringtail has no delegation tokens).
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user (stored as Kafka does; Ringtail checks no USER ACL).
        User = 7, "USER";
    }
}

kafka_enum! {
    /// Kafka's `org.apache.kafka.common.resource.PatternType`.
    PatternType {
        /// Not a type Kafka knows.
        Unknown = 0, "UNKNOWN";
        /// Filters only: every pattern type, names compared exactly.
        Any = 1, "ANY";
        /// Filters only: every pattern that applies to the named resource.
        Match = 2, "MATCH";
        /// The exact name (or `*`).
        Literal = 3, "LITERAL";
        /// Every name starting with the pattern's name.
        Prefixed = 4, "PREFIXED";
    }
}

kafka_enum! {
    /// Kafka's `org.apache.kafka.common.acl.AclOperation`.
    AclOperation {
        /// Not an operation Kafka knows.
        Unknown = 0, "UNKNOWN";
        /// Filters only.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Read.
        Read = 3, "READ";
        /// Write.
        Write = 4, "WRITE";
        /// Create.
        Create = 5, "CREATE";
        /// Delete.
        Delete = 6, "DELETE";
        /// Alter.
        Alter = 7, "ALTER";
        /// Describe.
        Describe = 8, "DESCRIBE";
        /// Inter-broker actions.
        ClusterAction = 9, "CLUSTER_ACTION";
        /// DescribeConfigs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// AlterConfigs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent produce (InitProducerId without a transactional id).
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        /// KIP-939.
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
}

kafka_enum! {
    /// Kafka's `org.apache.kafka.common.acl.AclPermissionType`.
    AclPermissionType {
        /// Not a permission Kafka knows.
        Unknown = 0, "UNKNOWN";
        /// Filters only.
        Any = 1, "ANY";
        /// Deny.
        Deny = 2, "DENY";
        /// Allow.
        Allow = 3, "ALLOW";
    }
}

impl AclOperation {
    /// True when an ALLOW ACL for `self` allows `requested` (Kafka's `IMPLIES_DESCRIBE`,
    /// `IMPLIES_DESCRIBE_CONFIGS`; ALL allows everything).
    pub fn allows(self, requested: AclOperation) -> bool {
        use AclOperation::*;
        self == All
            || self == requested
            || (requested == Describe && matches!(self, Read | Write | Delete | Alter))
            || (requested == DescribeConfigs && self == AlterConfigs)
    }
}

/// The operations Kafka reports in `*_authorized_operations` for a resource type (the
/// `supportedOps` of KafkaApis / AuthHelper).
pub fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        _ => &[],
    }
}

/// Who asks: the principal and the client's IP address as Kafka writes it (`127.0.0.1`,
/// `InetAddress.getHostAddress()`), "" if unknown.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// The session's principal.
    pub principal: &'a KafkaPrincipal,
    /// The client's IP address.
    pub host: &'a str,
}

/// True when a pattern (`pattern_type`, `pattern_name`) of an ACL applies to the resource
/// named `name` (LITERAL: the same name or `*`; PREFIXED: a prefix of the name).
pub fn pattern_applies(pattern_type: PatternType, pattern_name: &str, name: &str) -> bool {
    match pattern_type {
        PatternType::Literal => pattern_name == name || pattern_name == WILDCARD_RESOURCE,
        PatternType::Prefixed => name.starts_with(pattern_name),
        _ => false,
    }
}

/// Kafka's `StandardAuthorizer.authorize` for one action (see the module documentation).
/// `acls` is the whole ACL set.
pub fn authorize(
    settings: &AuthorizerConfig,
    acls: &[AclRecord],
    who: Requester<'_>,
    operation: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    let principal = who.principal.to_string();
    if settings.super_users.contains(&principal) {
        return true;
    }
    let mut found_resource_acl = false;
    let mut allowed = false;
    for acl in acls {
        if acl.resource_type != resource_type.code()
            || !pattern_applies(
                PatternType::from_code(acl.pattern_type),
                &acl.resource_name,
                name,
            )
        {
            continue;
        }
        found_resource_acl = true;
        if acl.principal != principal && acl.principal != WILDCARD_PRINCIPAL {
            continue;
        }
        if acl.host != WILDCARD_HOST && acl.host != who.host {
            continue;
        }
        let acl_operation = AclOperation::from_code(acl.operation);
        match AclPermissionType::from_code(acl.permission_type) {
            AclPermissionType::Deny
                if acl_operation == AclOperation::All || acl_operation == operation =>
            {
                return false;
            }
            AclPermissionType::Allow if acl_operation.allows(operation) => allowed = true,
            _ => {}
        }
    }
    allowed || (!found_resource_acl && settings.allow_everyone_if_no_acl_found)
}

/// Kafka's `Authorizer.authorizeByResourceType` (default method): may the requester perform
/// `operation` on at least one resource of `resource_type`? True when [`authorize`] allows it
/// on a resource named `hardcode` (super users, `allow.everyone.if.no.acl.found`), else when an
/// ALLOW ACL of the principal (or `User:*`) and host names a pattern that no DENY ACL covers
/// (a DENY on the LITERAL `*` covers everything; a LITERAL DENY covers its name, a PREFIXED
/// DENY every pattern starting with it). InitProducerId uses it for WRITE on any TOPIC.
pub fn authorize_by_resource_type(
    config: &AuthorizerConfig,
    acls: &[AclRecord],
    who: Requester<'_>,
    operation: AclOperation,
    resource_type: ResourceType,
) -> bool {
    if authorize(config, acls, who, operation, resource_type, "hardcode") {
        return true;
    }
    let principal = who.principal.to_string();
    let relevant = acls.iter().filter(|acl| {
        acl.resource_type == resource_type.code()
            && (acl.principal == principal || acl.principal == WILDCARD_PRINCIPAL)
            && (acl.host == WILDCARD_HOST || acl.host == who.host)
    });
    let mut denied_literal = Vec::new();
    let mut denied_prefixed = Vec::new();
    let mut allowed = Vec::new();
    for acl in relevant {
        let acl_operation = AclOperation::from_code(acl.operation);
        let pattern = PatternType::from_code(acl.pattern_type);
        match AclPermissionType::from_code(acl.permission_type) {
            AclPermissionType::Deny
                if acl_operation == AclOperation::All || acl_operation == operation =>
            {
                if pattern == PatternType::Literal {
                    if acl.resource_name == WILDCARD_RESOURCE {
                        return false;
                    }
                    denied_literal.push(acl.resource_name.as_str());
                } else {
                    denied_prefixed.push(acl.resource_name.as_str());
                }
            }
            AclPermissionType::Allow if acl_operation.allows(operation) => {
                allowed.push((pattern, acl.resource_name.as_str()))
            }
            _ => {}
        }
    }
    allowed.into_iter().any(|(pattern, name)| {
        let by_prefix = denied_prefixed.iter().any(|deny| name.starts_with(deny));
        let literal = pattern == PatternType::Literal && denied_literal.contains(&name);
        !by_prefix && !literal
    })
}

/// Kafka's `*_authorized_operations` bit field: bit `code` set for every operation of
/// [`supported_operations`] that `authorize` allows.
pub fn authorized_operations(
    settings: &AuthorizerConfig,
    acls: &[AclRecord],
    who: Requester<'_>,
    resource_type: ResourceType,
    name: &str,
) -> i32 {
    supported_operations(resource_type)
        .iter()
        .filter(|op| authorize(settings, acls, who, **op, resource_type, name))
        .fold(0, |bits, op| bits | (1 << op.code()))
}

/// The bit field of every operation of [`supported_operations`] (no authorizer: Kafka's
/// `AuthHelper.authorizedOperations` reports them all).
pub fn all_operations(resource_type: ResourceType) -> i32 {
    supported_operations(resource_type)
        .iter()
        .fold(0, |bits, op| bits | (1 << op.code()))
}

/// Kafka's `AclBindingFilter` (DescribeAcls, DeleteAcls): `None` strings match everything.
#[derive(Debug, Clone)]
pub struct AclFilter {
    /// ANY or one type.
    pub resource_type: ResourceType,
    /// `None`: every name.
    pub resource_name: Option<String>,
    /// ANY, MATCH, LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// `None`: every principal.
    pub principal: Option<String>,
    /// `None`: every host.
    pub host: Option<String>,
    /// ANY or one operation.
    pub operation: AclOperation,
    /// ANY, DENY or ALLOW.
    pub permission_type: AclPermissionType,
}

impl AclFilter {
    /// Kafka's `AclBindingFilter.isUnknown` (`ResourcePatternFilter.isUnknown` or
    /// `AccessControlEntryFilter.isUnknown`): the text of the INVALID_REQUEST error, if any.
    pub fn unknown_part(&self) -> Option<&'static str> {
        if self.resource_type == ResourceType::Unknown || self.pattern_type == PatternType::Unknown
        {
            Some("Unknown patternFilter.")
        } else if self.operation == AclOperation::Unknown
            || self.permission_type == AclPermissionType::Unknown
        {
            Some("Unknown entryFilter.")
        } else {
            None
        }
    }

    /// Kafka's `AclBindingFilter.matches` (`ResourcePatternFilter.matches` and
    /// `AccessControlEntryFilter.matches`).
    pub fn matches(&self, acl: &AclRecord) -> bool {
        let acl_pattern = PatternType::from_code(acl.pattern_type);
        if self.resource_type != ResourceType::Any && self.resource_type.code() != acl.resource_type
        {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != acl_pattern
        {
            return false;
        }
        if let Some(name) = &self.resource_name {
            let name_matches = if matches!(self.pattern_type, PatternType::Any)
                || self.pattern_type == acl_pattern
            {
                *name == acl.resource_name
            } else {
                pattern_applies(acl_pattern, &acl.resource_name, name)
            };
            if !name_matches {
                return false;
            }
        }
        self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == AclOperation::Any || self.operation.code() == acl.operation)
            && (self.permission_type == AclPermissionType::Any
                || self.permission_type.code() == acl.permission_type)
    }
}

/// Kafka's checks of a new ACL (`AclApis.handleCreateAcls`, `AclControlManager.validateNewAcl`,
/// `SecurityUtils.parseKafkaPrincipal`): the INVALID_REQUEST message if it is refused.
pub fn validate_new_acl(acl: &AclRecord) -> Result<(), String> {
    let resource_type = ResourceType::from_code(acl.resource_type);
    if matches!(resource_type, ResourceType::Unknown | ResourceType::Any) {
        return Err(format!("Invalid resourceType {resource_type}"));
    }
    let pattern_type = PatternType::from_code(acl.pattern_type);
    if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        return Err(format!("Invalid patternType {pattern_type}"));
    }
    let operation = AclOperation::from_code(acl.operation);
    if matches!(operation, AclOperation::Unknown | AclOperation::Any) {
        return Err(format!("Invalid operation {operation}"));
    }
    let permission = AclPermissionType::from_code(acl.permission_type);
    if !matches!(
        permission,
        AclPermissionType::Deny | AclPermissionType::Allow
    ) {
        return Err(format!("Invalid permissionType {permission}"));
    }
    if resource_type == ResourceType::Cluster && acl.resource_name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    if acl.resource_name.is_empty() {
        return Err("Invalid empty resource name".to_string());
    }
    if acl.principal.split_once(':').is_none() {
        return Err(format!(
            "expected a string in format principalType:principalName but got {}",
            acl.principal
        ));
    }
    Ok(())
}

/// Authorization results of one connection for the produce and fetch paths, by topic and
/// operation, valid for one ACL version (`MetadataImage::acl_version`): a new ACL set empties
/// it. Bounded: emptied when it holds [`AuthorizationCache::MAX_ENTRIES`] topics.
#[derive(Debug, Default)]
pub struct AuthorizationCache {
    acl_version: u64,
    /// Per topic: bit `code` of the operations decided, and of those allowed.
    results: HashMap<String, (u16, u16)>,
}

impl AuthorizationCache {
    /// Topics kept before the cache starts over.
    pub const MAX_ENTRIES: usize = 4096;

    /// The cached result for (`operation`, `topic`) under `acl_version`, or `decide()`'s, kept.
    /// A hit allocates nothing.
    pub fn get_or_decide(
        &mut self,
        acl_version: u64,
        operation: AclOperation,
        topic: &str,
        decide: impl FnOnce() -> bool,
    ) -> bool {
        if self.acl_version != acl_version {
            self.results.clear();
            self.acl_version = acl_version;
        }
        let bit = 1u16 << operation.code();
        if let Some((known, allowed)) = self.results.get(topic) {
            if known & bit != 0 {
                return allowed & bit != 0;
            }
        }
        if self.results.len() >= Self::MAX_ENTRIES {
            self.results.clear();
        }
        let result = decide();
        let entry = self.results.entry(topic.to_string()).or_default();
        entry.0 |= bit;
        if result {
            entry.1 |= bit;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        host: &str,
        operation: AclOperation,
        permission: AclPermissionType,
    ) -> AclRecord {
        AclRecord {
            resource_type: resource_type.code(),
            resource_name: name.to_string(),
            pattern_type: pattern.code(),
            principal: principal.to_string(),
            host: host.to_string(),
            operation: operation.code(),
            permission_type: permission.code(),
        }
    }

    fn allow_topic(
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: AclOperation,
    ) -> AclRecord {
        acl(
            ResourceType::Topic,
            name,
            pattern,
            principal,
            "*",
            op,
            AclPermissionType::Allow,
        )
    }

    fn check(acls: &[AclRecord], user: &str, op: AclOperation, topic: &str) -> bool {
        check_with(
            &AuthorizerConfig::default(),
            acls,
            user,
            "127.0.0.1",
            op,
            topic,
        )
    }

    fn check_with(
        settings: &AuthorizerConfig,
        acls: &[AclRecord],
        user: &str,
        host: &str,
        op: AclOperation,
        topic: &str,
    ) -> bool {
        let principal = KafkaPrincipal::user(user);
        let who = Requester {
            principal: &principal,
            host,
        };
        authorize(settings, acls, who, op, ResourceType::Topic, topic)
    }

    use AclOperation::*;
    use PatternType::{Literal, Prefixed};

    #[test]
    fn no_acls_denies_unless_allow_everyone() {
        assert!(!check(&[], "alice", Read, "t"));
        let open = AuthorizerConfig {
            allow_everyone_if_no_acl_found: true,
            ..Default::default()
        };
        assert!(check_with(&open, &[], "alice", "127.0.0.1", Read, "t"));
        // An ACL on the resource for someone else: no longer "no ACL found".
        let acls = [allow_topic("t", Literal, "User:bob", Read)];
        assert!(!check_with(&open, &acls, "alice", "127.0.0.1", Read, "t"));
        // An ACL on another resource leaves this one without ACLs.
        assert!(check_with(&open, &acls, "alice", "127.0.0.1", Read, "u"));
    }

    #[test]
    fn super_users_are_allowed_everything() {
        let settings = AuthorizerConfig {
            super_users: vec!["User:admin".to_string()],
            ..Default::default()
        };
        let deny = [acl(
            ResourceType::Topic,
            "*",
            Literal,
            "User:*",
            "*",
            All,
            AclPermissionType::Deny,
        )];
        assert!(check_with(
            &settings,
            &deny,
            "admin",
            "127.0.0.1",
            Delete,
            "t"
        ));
        assert!(!check_with(
            &settings,
            &deny,
            "alice",
            "127.0.0.1",
            Delete,
            "t"
        ));
    }

    #[test]
    fn literal_prefixed_and_wildcard_patterns() {
        let acls = [
            allow_topic("orders", Literal, "User:alice", Read),
            allow_topic("logs-", Prefixed, "User:alice", Read),
            allow_topic("*", Literal, "User:bob", Read),
        ];
        assert!(check(&acls, "alice", Read, "orders"));
        assert!(!check(&acls, "alice", Read, "orders2"), "literal is exact");
        assert!(check(&acls, "alice", Read, "logs-app"));
        assert!(check(&acls, "alice", Read, "logs-"));
        assert!(!check(&acls, "alice", Read, "logs"));
        assert!(check(&acls, "bob", Read, "anything"));
        // A PREFIXED `*` is a prefix, not a wildcard.
        let star = [allow_topic("*", Prefixed, "User:alice", Read)];
        assert!(!check(&star, "alice", Read, "t"));
        assert!(check(&star, "alice", Read, "*t"));
    }

    #[test]
    fn principal_and_host_must_match() {
        let acls = [
            allow_topic("t", Literal, "User:*", Write),
            acl(
                ResourceType::Topic,
                "t",
                Literal,
                "User:alice",
                "10.0.0.1",
                Read,
                AclPermissionType::Allow,
            ),
        ];
        assert!(check(&acls, "anyone", Write, "t"));
        assert!(!check(&acls, "alice", Read, "t"), "other host");
        assert!(check_with(
            &AuthorizerConfig::default(),
            &acls,
            "alice",
            "10.0.0.1",
            Read,
            "t"
        ));
    }

    #[test]
    fn implications_apply_to_allow_only() {
        for op in [Read, Write, Delete, Alter] {
            let acls = [allow_topic("t", Literal, "User:a", op)];
            assert!(check(&acls, "a", Describe, "t"), "{op} implies DESCRIBE");
            assert!(!check(&acls, "a", DescribeConfigs, "t"));
        }
        let acls = [allow_topic("t", Literal, "User:a", AlterConfigs)];
        assert!(check(&acls, "a", DescribeConfigs, "t"));
        assert!(!check(&acls, "a", Describe, "t"));
        let acls = [allow_topic("t", Literal, "User:a", Create)];
        assert!(!check(&acls, "a", Describe, "t"), "CREATE implies nothing");
        let all = [allow_topic("t", Literal, "User:a", All)];
        for op in supported_operations(ResourceType::Topic) {
            assert!(check(&all, "a", *op, "t"));
        }
        // DENY READ does not deny DESCRIBE (implied by an ALLOW WRITE).
        let acls = [
            allow_topic("t", Literal, "User:a", Write),
            acl(
                ResourceType::Topic,
                "t",
                Literal,
                "User:a",
                "*",
                Read,
                AclPermissionType::Deny,
            ),
        ];
        assert!(check(&acls, "a", Describe, "t"));
        assert!(!check(&acls, "a", Read, "t"));
    }

    #[test]
    fn deny_wins_over_allow() {
        let acls = [
            allow_topic("t", Literal, "User:a", All),
            acl(
                ResourceType::Topic,
                "t",
                Prefixed,
                "User:*",
                "*",
                Write,
                AclPermissionType::Deny,
            ),
        ];
        assert!(!check(&acls, "a", Write, "t"));
        assert!(check(&acls, "a", Read, "t"));
        let deny_all = [
            allow_topic("t", Literal, "User:a", Read),
            acl(
                ResourceType::Topic,
                "*",
                Literal,
                "User:a",
                "*",
                All,
                AclPermissionType::Deny,
            ),
        ];
        assert!(!check(&deny_all, "a", Read, "t"));
    }

    #[test]
    fn resource_types_are_separate() {
        let acls = [acl(
            ResourceType::Group,
            "t",
            Literal,
            "User:a",
            "*",
            Read,
            AclPermissionType::Allow,
        )];
        assert!(!check(&acls, "a", Read, "t"));
        let principal = KafkaPrincipal::user("a");
        let who = Requester {
            principal: &principal,
            host: "",
        };
        let settings = AuthorizerConfig::default();
        assert!(authorize(
            &settings,
            &acls,
            who,
            Read,
            ResourceType::Group,
            "t"
        ));
        assert_eq!(
            authorized_operations(&settings, &acls, who, ResourceType::Group, "t"),
            (1 << 3) | (1 << 8)
        );
    }

    #[test]
    fn cache_is_dropped_on_a_new_acl_version() {
        let mut cache = AuthorizationCache::default();
        assert!(cache.get_or_decide(1, Write, "t", || true));
        assert!(cache.get_or_decide(1, Write, "t", || unreachable!("cached")));
        assert!(!cache.get_or_decide(1, Read, "t", || false));
        assert!(!cache.get_or_decide(1, Read, "t", || unreachable!("cached")));
        assert!(
            !cache.get_or_decide(2, Write, "t", || false),
            "new version decides again"
        );
    }

    #[test]
    fn by_resource_type_needs_an_undenied_allow() {
        let principal = KafkaPrincipal::user("a");
        let who = Requester {
            principal: &principal,
            host: "",
        };
        let config = AuthorizerConfig::default();
        let any_write = |acls: &[AclRecord]| {
            authorize_by_resource_type(&config, acls, who, Write, ResourceType::Topic)
        };
        assert!(!any_write(&[]));
        let allow = allow_topic("logs-", Prefixed, "User:a", Write);
        assert!(any_write(std::slice::from_ref(&allow)));
        let deny_prefix = acl(
            ResourceType::Topic,
            "log",
            Prefixed,
            "User:a",
            "*",
            Write,
            AclPermissionType::Deny,
        );
        assert!(!any_write(&[allow.clone(), deny_prefix]));
        let read_only = allow_topic("t", Literal, "User:a", Read);
        assert!(!any_write(&[read_only]));
    }

    #[test]
    fn filters_follow_kafka() {
        let lit = allow_topic("foo", Literal, "User:a", Read);
        let pre = allow_topic("fo", Prefixed, "User:a", Read);
        let wild = allow_topic("*", Literal, "User:b", Write);
        let filter = |pattern: PatternType, name: Option<&str>| AclFilter {
            resource_type: ResourceType::Topic,
            resource_name: name.map(str::to_string),
            pattern_type: pattern,
            principal: None,
            host: None,
            operation: Any,
            permission_type: AclPermissionType::Any,
        };
        let hits = |f: &AclFilter| [&lit, &pre, &wild].map(|a| f.matches(a));
        assert_eq!(hits(&filter(PatternType::Any, None)), [true; 3]);
        assert_eq!(
            hits(&filter(PatternType::Any, Some("foo"))),
            [true, false, false]
        );
        assert_eq!(hits(&filter(Literal, Some("foo"))), [true, false, false]);
        assert_eq!(hits(&filter(Prefixed, None)), [false, true, false]);
        assert_eq!(hits(&filter(PatternType::Match, Some("foo"))), [true; 3]);
        assert_eq!(
            hits(&filter(PatternType::Match, Some("fox"))),
            [false, true, true]
        );
        let mut by_principal = filter(PatternType::Any, None);
        by_principal.principal = Some("User:b".into());
        assert_eq!(hits(&by_principal), [false, false, true]);
        let mut by_op = filter(PatternType::Any, None);
        by_op.operation = Write;
        assert_eq!(hits(&by_op), [false, false, true]);
        let mut unknown = filter(PatternType::Unknown, None);
        assert_eq!(unknown.unknown_part(), Some("Unknown patternFilter."));
        unknown.pattern_type = Literal;
        unknown.permission_type = AclPermissionType::Unknown;
        assert_eq!(unknown.unknown_part(), Some("Unknown entryFilter."));
    }

    #[test]
    fn new_acls_are_validated_as_kafka() {
        let ok = allow_topic("t", Literal, "User:a", Read);
        assert_eq!(validate_new_acl(&ok), Ok(()));
        let mut bad = ok.clone();
        bad.pattern_type = PatternType::Match.code();
        assert_eq!(
            validate_new_acl(&bad).unwrap_err(),
            "Invalid patternType MATCH"
        );
        let mut bad = ok.clone();
        bad.operation = Any.code();
        assert_eq!(validate_new_acl(&bad).unwrap_err(), "Invalid operation ANY");
        let mut bad = ok.clone();
        bad.resource_type = ResourceType::Any.code();
        assert_eq!(
            validate_new_acl(&bad).unwrap_err(),
            "Invalid resourceType ANY"
        );
        let mut bad = ok.clone();
        bad.permission_type = AclPermissionType::Any.code();
        assert_eq!(
            validate_new_acl(&bad).unwrap_err(),
            "Invalid permissionType ANY"
        );
        let mut bad = ok.clone();
        bad.resource_name.clear();
        assert_eq!(
            validate_new_acl(&bad).unwrap_err(),
            "Invalid empty resource name"
        );
        let mut bad = ok.clone();
        bad.resource_type = ResourceType::Cluster.code();
        assert!(validate_new_acl(&bad)
            .unwrap_err()
            .starts_with("The only valid name for the CLUSTER resource"));
        bad.resource_name = CLUSTER_NAME.into();
        assert_eq!(validate_new_acl(&bad), Ok(()));
        let mut bad = ok;
        bad.principal = "alice".into();
        assert!(validate_new_acl(&bad).is_err());
    }
}
