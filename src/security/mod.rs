//! Who is on the other end of a connection: its listener, security protocol and principal
//! (Kafka's `RequestContext` / `Session`). Issue 11 adds TLS (the principal from the client
//! certificate), SASL (PLAIN, SCRAM) and ACL authorization on top of these types.
//!
//! Depends only on `config`; `network` creates one [`Session`] per connection and
//! `request_handler` reads it.

pub mod acls;
pub mod authorizer;

use std::cell::RefCell;
use std::net::SocketAddr;

use crate::config::SecurityProtocol;

pub mod sasl;
pub mod scram_credentials;

/// Kafka's `KafkaPrincipal`: a type and a name, written `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaPrincipal {
    /// The principal type, `User` for every principal Kafka's stock builders create.
    pub principal_type: String,
    /// The user name (`ANONYMOUS` before or without authentication).
    pub name: String,
}

impl KafkaPrincipal {
    /// Kafka's `KafkaPrincipal.USER_TYPE`.
    pub const USER_TYPE: &'static str = "User";

    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> KafkaPrincipal {
        KafkaPrincipal {
            principal_type: Self::USER_TYPE.to_string(),
            name: name.into(),
        }
    }

    /// Kafka's `KafkaPrincipal.ANONYMOUS` (`User:ANONYMOUS`): PLAINTEXT clients, and SSL
    /// clients without a certificate.
    pub fn anonymous() -> KafkaPrincipal {
        KafkaPrincipal::user("ANONYMOUS")
    }
}

impl std::fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// One client connection as the request handlers see it. Lives as long as the connection
/// (`Rc`, on the shard that accepted it).
#[derive(Debug)]
pub struct Session {
    /// The listener name the client connected to (e.g. `PLAINTEXT`, `SASL_SSL`, or a custom name).
    pub listener_name: String,
    /// That listener's security protocol.
    pub security_protocol: SecurityProtocol,
    /// The client's address, if the socket reported it.
    pub client_address: Option<SocketAddr>,
    /// The authenticated principal; `User:ANONYMOUS` until authentication sets it.
    principal: RefCell<KafkaPrincipal>,
    /// ACL results of the produce / fetch topic checks (issue 11, `request_handler::authorize`).
    pub authorization_cache: RefCell<authorizer::AuthorizationCache>,
    /// SASL state on SASL_PLAINTEXT / SASL_SSL listeners (issue 11, [`sasl::SaslSession`]).
    pub sasl: RefCell<sasl::SaslSession>,
}

impl Session {
    /// A new connection's session, with the anonymous principal.
    pub fn new(
        listener_name: String,
        security_protocol: SecurityProtocol,
        client_address: Option<SocketAddr>,
    ) -> Session {
        Session {
            listener_name,
            security_protocol,
            client_address,
            principal: RefCell::new(KafkaPrincipal::anonymous()),
            authorization_cache: RefCell::default(),
            sasl: RefCell::new(sasl::SaslSession::default()),
        }
    }

    /// The current principal (changes once, when authentication completes, and again on
    /// re-authentication).
    pub fn principal(&self) -> KafkaPrincipal {
        self.principal.borrow().clone()
    }

    /// Sets the principal after a successful TLS or SASL authentication.
    pub fn set_principal(&self, principal: KafkaPrincipal) {
        *self.principal.borrow_mut() = principal;
        // Cached ACL results were the old principal's.
        *self.authorization_cache.borrow_mut() = Default::default();
    }

    /// The client host as Kafka reports it (`/127.0.0.1`), or "" if unknown.
    pub fn client_host(&self) -> String {
        self.client_address
            .map_or_else(String::new, |p| format!("/{}", p.ip()))
    }
}

/// TLS listeners: rustls configuration from `ssl.*`, the certificate principal (issue 11).
pub mod tls;
