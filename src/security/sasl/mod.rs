//! SASL authentication on SASL_PLAINTEXT / SASL_SSL listeners (Kafka's
//! `SaslServerAuthenticator`): the per-listener configuration ([`SaslConfig`]) and the
//! per-connection state machine ([`SaslSession`], kept in `Session::sasl`). Sans-io: the
//! request handlers feed it SaslHandshake / SaslAuthenticate payloads (or, after a v0
//! handshake, raw size-framed tokens) and send what it returns.
//!
//! Mechanisms: PLAIN ([`plain`], users from the JAAS `user_<name>` options) and SCRAM-SHA-256 /
//! SCRAM-SHA-512 ([`scram`], credentials from the metadata image). GSSAPI and OAUTHBEARER are
//! refused at start-up. Re-authentication (KIP-368) when `connections.max.reauth.ms` > 0.

pub mod jaas;
pub mod plain;
pub mod scram;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::BrokerConfig;
use crate::security::scram_credentials::{ScramCredential, ScramMechanism};

/// `PLAIN`.
pub const PLAIN: &str = "PLAIN";
/// The mechanisms Ringtail implements.
pub const SUPPORTED_MECHANISMS: [&str; 3] = [PLAIN, "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The SASL settings of one listener, read from Kafka's properties (listener-prefixed first:
/// `listener.name.<l>.sasl.enabled.mechanisms`, `listener.name.<l>.<mech>.sasl.jaas.config`,
/// `listener.name.<l>.<mech>.connections.max.reauth.ms`, then the broker-wide value).
#[derive(Debug, Clone)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`, in the order given (sent in SaslHandshake responses).
    pub enabled_mechanisms: Vec<String>,
    /// PLAIN users (name -> password) from the PlainLoginModule's `user_<name>` options.
    plain_users: BTreeMap<String, String>,
    /// `connection.failed.authentication.delay.ms`: how long a failed authentication waits
    /// before its answer is sent and the connection closed (KIP-306).
    pub failed_authentication_delay: Duration,
    /// `sasl.server.max.receive.size`: the largest frame read before authentication, bytes.
    pub max_receive_size: usize,
    /// `connections.max.reauth.ms` by mechanism (0: no re-authentication, sessions never
    /// expire).
    max_reauth_ms: BTreeMap<String, i64>,
    /// `ringtail.sasl.authentication.timeout.ms`: a connection not authenticated this long
    /// after it opened (or after the last step of the exchange) is closed.
    pub authentication_timeout: Duration,
}

fn setting<'a>(config: &'a BrokerConfig, listener: &str, name: &str) -> Option<&'a str> {
    config
        .listener_property(listener, name)
        .or_else(|| config.property_value(name))
}

fn int_setting(config: &BrokerConfig, listener: &str, name: &str, min: i64) -> Result<i64, String> {
    let raw = setting(config, listener, name).unwrap_or("0");
    match raw.trim().parse::<i64>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(format!(
            "invalid value '{raw}' for {name}: must be an integer >= {min}"
        )),
    }
}

impl SaslConfig {
    /// Builds and validates listener `listener`'s SASL settings. The error is a start-up
    /// message naming the property.
    pub fn for_listener(config: &BrokerConfig, listener: &str) -> Result<SaslConfig, String> {
        let mechanisms_value = setting(config, listener, "sasl.enabled.mechanisms").unwrap_or("");
        let enabled_mechanisms: Vec<String> = mechanisms_value
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        if enabled_mechanisms.is_empty() {
            return Err(format!(
                "listener {listener}: sasl.enabled.mechanisms is empty; enable PLAIN, SCRAM-SHA-256 and/or SCRAM-SHA-512"
            ));
        }
        for mechanism in &enabled_mechanisms {
            match mechanism.as_str() {
                m if SUPPORTED_MECHANISMS.contains(&m) => {}
                "GSSAPI" => {
                    return Err(format!(
                        "listener {listener}: SASL mechanism GSSAPI (Kerberos) is not supported by Ringtail \
                         (sasl.enabled.mechanisms defaults to GSSAPI in Kafka): set sasl.enabled.mechanisms \
                         or listener.name.{}.sasl.enabled.mechanisms to PLAIN, SCRAM-SHA-256 and/or SCRAM-SHA-512",
                        listener.to_ascii_lowercase()
                    ))
                }
                "OAUTHBEARER" => {
                    return Err(format!(
                        "listener {listener}: SASL mechanism OAUTHBEARER is not supported by Ringtail; \
                         use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                    ))
                }
                other => {
                    return Err(format!(
                        "listener {listener}: unknown SASL mechanism '{other}' in sasl.enabled.mechanisms \
                         (supported: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                    ))
                }
            }
        }
        let mut plain_users = BTreeMap::new();
        if enabled_mechanisms.iter().any(|m| m == PLAIN) {
            let prefixed = "plain.sasl.jaas.config".to_string();
            let jaas = config
                .listener_property(listener, &prefixed)
                .or_else(|| config.property_value("sasl.jaas.config"))
                .ok_or_else(|| {
                    format!(
                        "listener {listener}: PLAIN is enabled but has no JAAS configuration: set \
                         listener.name.{}.plain.sasl.jaas.config (or sasl.jaas.config) to \
                         'org.apache.kafka.common.security.plain.PlainLoginModule required user_<name>=\"<password>\";'",
                        listener.to_ascii_lowercase()
                    )
                })?;
            let entry = jaas::parse_jaas_config(jaas)
                .map_err(|e| format!("listener {listener}: invalid PLAIN sasl.jaas.config: {e}"))?;
            if entry.login_module != jaas::PLAIN_LOGIN_MODULE {
                return Err(format!(
                    "listener {listener}: the PLAIN sasl.jaas.config names login module {}, expected {}",
                    entry.login_module,
                    jaas::PLAIN_LOGIN_MODULE
                ));
            }
            plain_users = jaas::plain_users(&entry);
        }
        for mechanism in enabled_mechanisms
            .iter()
            .filter(|m| m.starts_with("SCRAM-"))
        {
            let name = format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase());
            if let Some(jaas) = config.listener_property(listener, &name) {
                let entry = jaas::parse_jaas_config(jaas)
                    .map_err(|e| format!("listener {listener}: invalid {name}: {e}"))?;
                if entry.login_module != jaas::SCRAM_LOGIN_MODULE {
                    return Err(format!(
                        "listener {listener}: {name} names login module {}, expected {}",
                        entry.login_module,
                        jaas::SCRAM_LOGIN_MODULE
                    ));
                }
            }
        }
        let global_reauth = int_setting(config, listener, "connections.max.reauth.ms", 0)?;
        let mut max_reauth_ms = BTreeMap::new();
        for mechanism in &enabled_mechanisms {
            let name = format!(
                "{}.connections.max.reauth.ms",
                mechanism.to_ascii_lowercase()
            );
            let value = match config.listener_property(listener, &name) {
                Some(_) => int_setting(config, listener, &name, 0)?,
                None => global_reauth,
            };
            max_reauth_ms.insert(mechanism.clone(), value);
        }
        let delay = int_setting(
            config,
            listener,
            "connection.failed.authentication.delay.ms",
            0,
        )?;
        let max_receive =
            int_setting(config, listener, "sasl.server.max.receive.size", 1)?.min(i32::MAX as i64);
        let timeout = int_setting(
            config,
            listener,
            "ringtail.sasl.authentication.timeout.ms",
            1,
        )?;
        Ok(SaslConfig {
            enabled_mechanisms,
            plain_users,
            failed_authentication_delay: Duration::from_millis(delay as u64),
            max_receive_size: max_receive as usize,
            max_reauth_ms,
            authentication_timeout: Duration::from_millis(timeout as u64),
        })
    }

    /// `connections.max.reauth.ms` for `mechanism` (0: disabled).
    pub fn max_reauth_ms(&self, mechanism: &str) -> i64 {
        self.max_reauth_ms.get(mechanism).copied().unwrap_or(0)
    }
}

/// Validates the SASL settings of every SASL listener (start-up; Kafka fails to start on the
/// same problems).
pub fn validate(config: &BrokerConfig) -> Result<(), String> {
    for listener in &config.listeners {
        if listener.security_protocol.uses_sasl() {
            SaslConfig::for_listener(config, &listener.name)?;
        }
    }
    Ok(())
}

/// The mechanism negotiated by a SaslHandshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// PLAIN.
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(ScramMechanism),
}

impl Mechanism {
    /// From the SASL name; `None` for mechanisms Ringtail does not implement.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        if name == PLAIN {
            return Some(Mechanism::Plain);
        }
        ScramMechanism::from_mechanism_name(name).map(Mechanism::Scram)
    }

    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => PLAIN,
            Mechanism::Scram(m) => m.mechanism_name(),
        }
    }
}

/// Where a connection is in its SASL exchange. One per connection, so the size of the SCRAM
/// variant does not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum State {
    /// Nothing yet: ApiVersions and SaslHandshake are served.
    AwaitingHandshake,
    /// After SaslHandshake: the next message is a token (SaslAuthenticate, or a raw frame
    /// after a v0 handshake).
    Authenticating {
        mechanism: Mechanism,
        raw: bool,
        scram: Option<scram::ScramServer>,
    },
    /// Authenticated: every API is served.
    Authenticated,
    /// Failed: the connection is closing.
    Failed,
}

/// A completed authentication.
#[derive(Debug, Clone)]
struct Authenticated {
    mechanism: Mechanism,
    user: String,
    /// When the session expires (KIP-368), if `connections.max.reauth.ms` > 0.
    expires_at: Option<Instant>,
}

/// The per-connection SASL state (the `sasl` field of `Session`).
#[derive(Debug)]
pub struct SaslSession {
    state: State,
    authenticated: Option<Authenticated>,
    /// When the current (re-)authentication started, for the authentication timeout.
    started_at: Instant,
}

impl Default for SaslSession {
    fn default() -> Self {
        SaslSession {
            state: State::AwaitingHandshake,
            authenticated: None,
            started_at: Instant::now(),
        }
    }
}

/// The answer to a SaslHandshake.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// Mechanism accepted (error NONE).
    Accepted,
    /// UNSUPPORTED_SASL_MECHANISM: answer with the enabled list, then close.
    UnsupportedMechanism,
    /// ILLEGAL_SASL_STATE with this message: answer, then close (or, on a non-SASL listener
    /// or an authenticated connection without re-authentication, just answer).
    IllegalState(String),
    /// Re-authentication asked for another mechanism: SASL_AUTHENTICATION_FAILED, close.
    Failed(String),
}

/// The result of one authentication token.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenOutcome {
    /// Send this challenge; more tokens follow.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `response` with `session_lifetime_ms` (0: none).
    Complete {
        /// The authenticated user name (principal `User:<user>`).
        user: String,
        /// The final server message (empty for PLAIN).
        response: Vec<u8>,
        /// KIP-368 session lifetime, ms; 0 when re-authentication is off.
        session_lifetime_ms: i64,
        /// True for a re-authentication (principal unchanged).
        reauthentication: bool,
    },
    /// SASL_AUTHENTICATION_FAILED with this message, then close after the delay.
    Failed(String),
    /// A token where none is expected: ILLEGAL_SASL_STATE with this message, then close.
    IllegalState(String),
}

impl SaslSession {
    /// True until the connection has authenticated (or while it re-authenticates).
    pub fn authentication_pending(&self) -> bool {
        !matches!(self.state, State::Authenticated)
    }

    /// True when the next frame is a raw SASL token (after a SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Authenticating { raw: true, .. })
    }

    /// When the current authentication step started (for the authentication timeout).
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&str> {
        self.authenticated.as_ref().map(|a| a.user.as_str())
    }

    /// The negotiated (or last authenticated) mechanism, for logs.
    pub fn mechanism_name(&self) -> &'static str {
        match &self.state {
            State::Authenticating { mechanism, .. } => mechanism.name(),
            _ => self
                .authenticated
                .as_ref()
                .map_or("none", |a| a.mechanism.name()),
        }
    }

    /// True when an authenticated session has expired (KIP-368: the broker closes the
    /// connection on its next request).
    pub fn session_expired(&self, now: Instant) -> bool {
        matches!(self.state, State::Authenticated)
            && self
                .authenticated
                .as_ref()
                .and_then(|a| a.expires_at)
                .is_some_and(|at| now >= at)
    }

    /// Whether API `api_key_name` may be served now. `Err` is the reason to close the
    /// connection (Kafka: `IllegalSaslStateException` "Unexpected Kafka request of type X
    /// during SASL handshake.", or an expired session).
    pub fn check_request(&self, api_key_name: &str, is_api_versions: bool) -> Result<(), String> {
        match &self.state {
            State::Authenticated => {
                if self.session_expired(Instant::now()) {
                    return Err(format!(
                        "SASL session of {} expired without re-authentication (connections.max.reauth.ms)",
                        self.user().unwrap_or("?")
                    ));
                }
                Ok(())
            }
            State::AwaitingHandshake if is_api_versions && self.authenticated.is_none() => Ok(()),
            State::Failed => Err("request after a failed SASL authentication".to_string()),
            _ => Err(format!(
                "Unexpected Kafka request of type {api_key_name} during SASL handshake."
            )),
        }
    }

    /// A SaslHandshake for `mechanism` (`version` 0: raw tokens follow).
    pub fn handshake(
        &mut self,
        config: &SaslConfig,
        mechanism: &str,
        version: i16,
    ) -> HandshakeOutcome {
        match &self.state {
            State::AwaitingHandshake => {}
            State::Authenticated => {
                // KIP-368: a handshake on an authenticated connection starts re-authentication,
                // possible only when the session has a lifetime.
                let Some(previous) = &self.authenticated else {
                    return HandshakeOutcome::IllegalState(
                        "Unexpected handshake request with client mechanism ".to_string()
                            + mechanism,
                    );
                };
                if previous.expires_at.is_none() {
                    return HandshakeOutcome::IllegalState(format!(
                        "Unexpected handshake request with client mechanism {mechanism}: re-authentication is disabled (connections.max.reauth.ms=0)"
                    ));
                }
                if previous.mechanism.name() != mechanism {
                    self.state = State::Failed;
                    return HandshakeOutcome::Failed(format!(
                        "Re-authentication failed: SASL mechanism changed from {} to {mechanism}",
                        previous.mechanism.name()
                    ));
                }
                if version == 0 {
                    self.state = State::Failed;
                    return HandshakeOutcome::IllegalState(
                        "Re-authentication requires SaslHandshake v1 or later".to_string(),
                    );
                }
            }
            _ => {
                self.state = State::Failed;
                return HandshakeOutcome::IllegalState(
                    "Unexpected SaslHandshake request during SASL authentication".to_string(),
                );
            }
        }
        let enabled = config.enabled_mechanisms.iter().any(|m| m == mechanism);
        let Some(parsed) = Mechanism::from_name(mechanism).filter(|_| enabled) else {
            self.state = State::Failed;
            return HandshakeOutcome::UnsupportedMechanism;
        };
        self.started_at = Instant::now();
        self.state = State::Authenticating {
            mechanism: parsed,
            raw: version == 0,
            scram: None,
        };
        HandshakeOutcome::Accepted
    }

    /// One authentication token (SaslAuthenticate `auth_bytes`, or a raw frame after a v0
    /// handshake). `scram_lookup` gives a user's SCRAM credential for a mechanism.
    pub fn authenticate(
        &mut self,
        config: &SaslConfig,
        token: &[u8],
        scram_lookup: impl FnOnce(&str, ScramMechanism) -> Option<ScramCredential>,
    ) -> TokenOutcome {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let State::Authenticating {
            mechanism,
            raw,
            scram,
        } = state
        else {
            let message = match state {
                State::Authenticated => {
                    "SaslAuthenticate request received after successful authentication"
                }
                _ => "Unexpected SaslAuthenticate request before SaslHandshake",
            };
            if matches!(state, State::Authenticated) {
                // Kafka answers ILLEGAL_SASL_STATE and keeps the connection.
                self.state = state;
            }
            return TokenOutcome::IllegalState(message.to_string());
        };
        let result = match mechanism {
            Mechanism::Plain => {
                plain::authenticate(token, &config.plain_users).map(|user| (user, Vec::new()))
            }
            Mechanism::Scram(scram_mechanism) => {
                let mut server = scram.unwrap_or_else(|| scram::ScramServer::new(scram_mechanism));
                match server.evaluate(token, |user| scram_lookup(user, scram_mechanism)) {
                    scram::ScramStep::Challenge(challenge) => {
                        self.state = State::Authenticating {
                            mechanism,
                            raw,
                            scram: Some(server),
                        };
                        return TokenOutcome::Challenge(challenge);
                    }
                    scram::ScramStep::Success {
                        username,
                        server_final,
                    } => Ok((username, server_final)),
                    scram::ScramStep::Failure(message) => Err(message),
                }
            }
        };
        let (user, response) = match result {
            Ok(done) => done,
            Err(message) => return TokenOutcome::Failed(message),
        };
        let reauthentication = self.authenticated.is_some();
        if let Some(previous) = &self.authenticated {
            if previous.user != user {
                return TokenOutcome::Failed(format!(
                    "Cannot change principals during re-authentication from User:{}: User:{user}",
                    previous.user
                ));
            }
        }
        let lifetime = config.max_reauth_ms(mechanism.name()).max(0);
        let now = Instant::now();
        self.authenticated = Some(Authenticated {
            mechanism,
            user: user.clone(),
            expires_at: (lifetime > 0).then(|| now + Duration::from_millis(lifetime as u64)),
        });
        self.state = State::Authenticated;
        TokenOutcome::Complete {
            user,
            response,
            session_lifetime_ms: lifetime,
            reauthentication,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(settings: &[(&str, &str)]) -> Result<BrokerConfig, String> {
        let mut args: Vec<String> = vec!["listeners=SASL_PLAINTEXT://127.0.0.1:0".to_string()];
        args.extend(settings.iter().map(|(k, v)| format!("{k}={v}")));
        {
            let pairs: Vec<(String, String)> = args
                .iter()
                .map(|a| {
                    let (k, v) = a.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            BrokerConfig::load(None, &pairs).map_err(|e| e.to_string())
        }
    }

    #[test]
    fn gssapi_default_is_refused_with_a_clear_message() {
        let c = config(&[]).unwrap();
        let e = validate(&c).unwrap_err();
        assert!(e.contains("GSSAPI"), "{e}");
    }

    #[test]
    fn plain_users_from_listener_jaas() {
        let c = config(&[
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256"),
            (
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"a-pw\";",
            ),
        ])
        .unwrap();
        let s = SaslConfig::for_listener(&c, "SASL_PLAINTEXT").unwrap();
        assert_eq!(s.enabled_mechanisms, ["PLAIN", "SCRAM-SHA-256"]);
        let mut session = SaslSession::default();
        assert!(session.check_request("Metadata", false).is_err());
        assert!(session.check_request("ApiVersions", true).is_ok());
        assert_eq!(
            session.handshake(&s, "PLAIN", 1),
            HandshakeOutcome::Accepted
        );
        match session.authenticate(&s, b"\0alice\0a-pw", |_, _| None) {
            TokenOutcome::Complete { user, .. } => assert_eq!(user, "alice"),
            other => panic!("{other:?}"),
        }
        assert!(session.check_request("Metadata", false).is_ok());
        let mut other = SaslSession::default();
        assert_eq!(
            other.handshake(&s, "GSSAPI", 1),
            HandshakeOutcome::UnsupportedMechanism
        );
    }
}
