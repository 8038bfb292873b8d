//! SaslHandshake (key 17, v0-1) and SaslAuthenticate (key 36, v0-2), and the pre-authentication
//! gate, as Kafka's `SaslServerAuthenticator`:
//!
//! - On a SASL listener, before authentication completes only ApiVersions and SaslHandshake,
//!   then SaslAuthenticate, are served; any other request closes the connection
//!   ("Unexpected Kafka request of type X during SASL handshake.").
//! - SaslHandshake v0: the tokens that follow are raw, size-framed (no request header), as
//!   Kafka still accepts (`enableKafkaSaslAuthenticateHeaders(false)`); the network layer hands
//!   those frames to [`raw_token`]. SaslHandshake v1: tokens come in SaslAuthenticate requests.
//! - A failed authentication answers SASL_AUTHENTICATION_FAILED with Kafka's message after
//!   `connection.failed.authentication.delay.ms` (KIP-306: the answer is delayed, then the
//!   connection closed), logged with the client address. An unknown mechanism answers
//!   UNSUPPORTED_SASL_MECHANISM with the enabled list, then closes.
//! - KIP-368: with `connections.max.reauth.ms` > 0, SaslAuthenticate v1+ answers
//!   `session_lifetime_ms`; a SaslHandshake on the authenticated connection starts
//!   re-authentication (same mechanism, same principal); a request after the session expired
//!   closes the connection.
//! - On a non-SASL listener SaslHandshake / SaslAuthenticate answer ILLEGAL_SASL_STATE (Kafka's
//!   `KafkaApis`), as on an authenticated connection without re-authentication.

use std::rc::Rc;

use bytes::{BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{CloseReason, Dispatched, Request, Response};
use crate::security::sasl::{HandshakeOutcome, SaslConfig, TokenOutcome};
use crate::security::{KafkaPrincipal, Session};
use crate::shard::ShardContext;

/// The pre-authentication gate: `Err` closes the connection before `api_key` is handled.
pub(super) fn gate(session: &Session, api_key: ApiKey) -> Result<(), CloseReason> {
    if !session.security_protocol.uses_sasl()
        || matches!(api_key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
    {
        return Ok(());
    }
    session
        .sasl
        .borrow()
        .check_request(&format!("{api_key:?}"), api_key == ApiKey::ApiVersions)
        .map_err(CloseReason::Sasl)
}

fn sasl_config(ctx: &ShardContext, session: &Session) -> Result<SaslConfig, String> {
    SaslConfig::for_listener(&ctx.config, &session.listener_name)
}

/// Logs a failed authentication as Kafka does ("Failed authentication with /host (...)").
fn log_failure(session: &Session, message: &str) {
    tracing::warn!(
        "Failed authentication with {} (listener {}): {message}",
        session
            .client_address
            .map_or_else(|| "unknown".to_string(), |a| a.to_string()),
        session.listener_name,
    );
}

/// Sends `response` (if any) after the failed-authentication delay, then closes.
fn fail_later(
    ctx: &ShardContext,
    session: &Session,
    response: Option<Response>,
    message: String,
) -> Dispatched {
    let delay = sasl_config(ctx, session)
        .map(|c| c.failed_authentication_delay)
        .unwrap_or(std::time::Duration::from_millis(100));
    let reason = CloseReason::Sasl(message);
    Dispatched::Final(Box::pin(async move {
        if !delay.is_zero() {
            glommio::timer::sleep(delay).await;
        }
        match response {
            Some(Response::Frame(frame)) => Response::FrameThenClose(frame, reason),
            _ => Response::Close(reason),
        }
    }))
}

fn ready(response: Response) -> Dispatched {
    Dispatched::Respond(Box::pin(async move { response }))
}

/// SaslHandshake: checks the mechanism and moves the connection to the token exchange.
pub(super) fn handshake(mut request: Request) -> Dispatched {
    let decoded = match request.decode::<SaslHandshakeRequest>() {
        Ok(decoded) => decoded,
        Err(reason) => return Dispatched::Close(reason),
    };
    let session = request.session.clone();
    let mechanism = decoded.mechanism.to_string();
    if !session.security_protocol.uses_sasl() {
        let response = SaslHandshakeResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code());
        return ready(request.encode(&response));
    }
    let config = match sasl_config(&request.ctx, &session) {
        Ok(config) => config,
        Err(message) => return Dispatched::Close(CloseReason::Sasl(message)),
    };
    let mechanisms = config
        .enabled_mechanisms
        .iter()
        .map(|m| StrBytes::from_string(m.clone()))
        .collect();
    let outcome = session
        .sasl
        .borrow_mut()
        .handshake(&config, &mechanism, request.version);
    let response = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
    match outcome {
        HandshakeOutcome::Accepted => ready(request.encode(&response)),
        HandshakeOutcome::UnsupportedMechanism => {
            let message = format!(
                "Unsupported SASL mechanism {mechanism} (enabled: {})",
                config.enabled_mechanisms.join(", ")
            );
            log_failure(&session, &message);
            let response = response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
            fail_later(
                &request.ctx,
                &session,
                Some(request.encode(&response)),
                message,
            )
        }
        HandshakeOutcome::IllegalState(message) => {
            let response = response.with_error_code(ResponseError::IllegalSaslState.code());
            if session.sasl.borrow().authentication_pending() {
                log_failure(&session, &message);
                return fail_later(
                    &request.ctx,
                    &session,
                    Some(request.encode(&response)),
                    message,
                );
            }
            ready(request.encode(&response))
        }
        HandshakeOutcome::Failed(message) => {
            log_failure(&session, &message);
            let response = response.with_error_code(ResponseError::SaslAuthenticationFailed.code());
            fail_later(
                &request.ctx,
                &session,
                Some(request.encode(&response)),
                message,
            )
        }
    }
}

/// Runs one token through the session's exchange.
fn evaluate(ctx: &ShardContext, session: &Session, token: &[u8]) -> TokenOutcome {
    let config = match sasl_config(ctx, session) {
        Ok(config) => config,
        Err(message) => return TokenOutcome::Failed(message),
    };
    let image = ctx.metadata();
    let outcome = session
        .sasl
        .borrow_mut()
        .authenticate(&config, token, |user, mechanism| {
            image
                .scram_credentials
                .get(user)
                .and_then(|m| m.get(&mechanism))
                .cloned()
        });
    if let TokenOutcome::Complete {
        user,
        reauthentication,
        session_lifetime_ms,
        ..
    } = &outcome
    {
        session.set_principal(KafkaPrincipal::user(user.clone()));
        tracing::info!(
            "{} of User:{user} from {} on listener {} with {} (session lifetime {session_lifetime_ms} ms)",
            if *reauthentication { "re-authentication" } else { "authentication" },
            session.client_host(),
            session.listener_name,
            session.sasl.borrow().mechanism_name(),
        );
    }
    outcome
}

/// SaslAuthenticate: one token of the exchange.
pub(super) fn authenticate(mut request: Request) -> Dispatched {
    let decoded = match request.decode::<SaslAuthenticateRequest>() {
        Ok(decoded) => decoded,
        Err(reason) => return Dispatched::Close(reason),
    };
    let session = request.session.clone();
    if !session.security_protocol.uses_sasl() {
        let response = SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "SaslAuthenticate request received on a listener without SASL",
            )));
        return ready(request.encode(&response));
    }
    let outcome = evaluate(&request.ctx, &session, &decoded.auth_bytes);
    let version = request.version;
    match outcome {
        TokenOutcome::Challenge(challenge) => {
            // As Kafka: error_message "" (not null) on success.
            let response = SaslAuthenticateResponse::default().with_auth_bytes(challenge.into());
            ready(request.encode(&response))
        }
        TokenOutcome::Complete {
            response,
            session_lifetime_ms,
            ..
        } => {
            let mut answer = SaslAuthenticateResponse::default().with_auth_bytes(response.into());
            if version >= 1 {
                answer = answer.with_session_lifetime_ms(session_lifetime_ms);
            }
            ready(request.encode(&answer))
        }
        TokenOutcome::Failed(message) => {
            log_failure(&session, &message);
            let response = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(message.clone())));
            fail_later(
                &request.ctx,
                &session,
                Some(request.encode(&response)),
                message,
            )
        }
        TokenOutcome::IllegalState(message) => {
            let response = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_string(message.clone())));
            if session.sasl.borrow().authentication_pending() {
                log_failure(&session, &message);
                return fail_later(
                    &request.ctx,
                    &session,
                    Some(request.encode(&response)),
                    message,
                );
            }
            ready(request.encode(&response))
        }
    }
}

/// A raw SASL token (the frame after a SaslHandshake v0, size prefix removed). The answer is
/// the server token, size-prefixed, without a response header; a failure closes the connection
/// without an answer (the raw protocol has none), after the failed-authentication delay.
pub fn raw_token(ctx: &Rc<ShardContext>, token: &[u8], session: &Rc<Session>) -> Dispatched {
    let framed = |bytes: Vec<u8>| {
        let mut frame = BytesMut::with_capacity(4 + bytes.len());
        frame.put_i32(bytes.len() as i32);
        frame.put_slice(&bytes);
        Response::Frame(frame)
    };
    match evaluate(ctx, session, token) {
        TokenOutcome::Challenge(challenge) => ready(framed(challenge)),
        TokenOutcome::Complete { response, .. } => ready(framed(response)),
        TokenOutcome::Failed(message) | TokenOutcome::IllegalState(message) => {
            log_failure(session, &message);
            fail_later(ctx, session, None, message)
        }
    }
}
