//! SASL/SCRAM server (RFC 5802, SCRAM-SHA-256 per RFC 7677, SCRAM-SHA-512), as Kafka's
//! `ScramSaslServer`: client-first -> server-first -> client-final -> server-final. Sans-io:
//! each client message in, the next server message (or a failure) out. Never panics on input;
//! proofs are compared in constant time. No channel binding (`n,,` / `y,,` only), no
//! delegation tokens (`tokenauth` extension refused), no other extensions.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::security::scram_credentials::{ScramCredential, ScramMechanism};

/// What one client message leads to.
#[derive(Debug)]
pub enum ScramStep {
    /// Send this server-first message and wait for the client-final message.
    Challenge(Vec<u8>),
    /// Authenticated as `username`; send the server-final message.
    Success {
        /// The authenticated user (SCRAM `saslname` decoded).
        username: String,
        /// `v=<ServerSignature>`.
        server_final: Vec<u8>,
    },
    /// Failed; the message for SASL_AUTHENTICATION_FAILED and the server log.
    Failure(String),
}

enum State {
    ClientFirst,
    ClientFinal {
        username: String,
        credential: ScramCredential,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

/// One SCRAM exchange on one connection.
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// Kafka's message for any SCRAM failure (`SaslServerAuthenticator` for a `SaslException`).
fn invalid_credentials(mechanism: ScramMechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
    )
}

/// RFC 5802 `saslname` decoding: `=2C` is `,`, `=3D` is `=`, any other `=` is invalid.
fn decode_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// A server nonce: 32 random alphanumeric characters (as Kafka's
/// `ScramFormatter.secureRandomString`; clients such as librdkafka mis-parse `=` in a nonce).
fn server_nonce() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

impl ScramServer {
    /// A new exchange for `mechanism`.
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer {
            mechanism,
            state: State::ClientFirst,
        }
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// True once the exchange succeeded or failed.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Evaluates the next client message. `lookup` gives a user's stored credential for this
    /// mechanism (`None`: unknown user).
    pub fn evaluate(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> ScramStep {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::ClientFirst => self.client_first(message, lookup),
            State::ClientFinal {
                username,
                credential,
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
            } => self.client_final(
                message,
                &username,
                &credential,
                &gs2_header,
                &client_first_bare,
                &server_first,
                &nonce,
            ),
            State::Done => ScramStep::Failure(
                "Unexpected SASL token after the SCRAM exchange completed".to_string(),
            ),
        }
    }

    fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> ScramStep {
        let invalid =
            |why: &str| ScramStep::Failure(format!("Invalid SCRAM client first message: {why}"));
        let Ok(message) = std::str::from_utf8(message) else {
            return invalid("not UTF-8");
        };
        // gs2-header: ("n" / "y" / "p=...") "," [ "a=" authzid ] ","
        let mut parts = message.splitn(3, ',');
        let (Some(cbind), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return invalid("missing GS2 header");
        };
        if cbind.starts_with("p=") {
            return ScramStep::Failure(
                "Authentication failed: SCRAM channel binding is not supported".to_string(),
            );
        }
        if cbind != "n" && cbind != "y" {
            return invalid("invalid GS2 channel binding flag");
        }
        let authzid = match authzid {
            "" => None,
            a => match a.strip_prefix("a=").and_then(decode_saslname) {
                Some(a) => Some(a),
                None => return invalid("invalid authorization id"),
            },
        };
        let gs2_header = format!("{cbind},{},", message.split(',').nth(1).unwrap_or(""));
        let mut attributes = bare.split(',');
        let Some(name) = attributes.next().and_then(|a| a.strip_prefix("n=")) else {
            return invalid("missing user name");
        };
        let Some(username) = decode_saslname(name) else {
            return invalid("invalid user name encoding");
        };
        let Some(client_nonce) = attributes.next().and_then(|a| a.strip_prefix("r=")) else {
            return invalid("missing nonce");
        };
        if client_nonce.is_empty() {
            return invalid("empty nonce");
        }
        let extensions: Vec<&str> = attributes.collect();
        if let Some(extension) = extensions.first() {
            let key = extension.split('=').next().unwrap_or("");
            if key == "tokenauth" {
                return ScramStep::Failure(
                    "Authentication failed: delegation tokens (SCRAM tokenauth extension) are not supported"
                        .to_string(),
                );
            }
            return ScramStep::Failure(format!(
                "Authentication failed: unsupported SCRAM extension '{key}'"
            ));
        }
        if authzid.as_ref().is_some_and(|a| *a != username) {
            return ScramStep::Failure(
                "Authentication failed: Client requested an authorization id that is different from username"
                    .to_string(),
            );
        }
        let Some(credential) = lookup(&username) else {
            return ScramStep::Failure(invalid_credentials(self.mechanism));
        };
        let nonce = format!("{client_nonce}{}", server_nonce());
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let challenge = server_first.clone().into_bytes();
        self.state = State::ClientFinal {
            username,
            credential,
            gs2_header,
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        };
        ScramStep::Challenge(challenge)
    }

    #[allow(clippy::too_many_arguments)]
    fn client_final(
        &mut self,
        message: &[u8],
        username: &str,
        credential: &ScramCredential,
        gs2_header: &str,
        client_first_bare: &str,
        server_first: &str,
        nonce: &str,
    ) -> ScramStep {
        let mechanism = self.mechanism;
        let fail = || ScramStep::Failure(invalid_credentials(mechanism));
        let Ok(message) = std::str::from_utf8(message) else {
            return fail();
        };
        let Some(proof_at) = message.rfind(",p=") else {
            return fail();
        };
        let without_proof = &message[..proof_at];
        let Ok(proof) = BASE64.decode(&message[proof_at + 3..]) else {
            return fail();
        };
        let mut attributes = without_proof.split(',');
        let channel_binding = attributes.next().and_then(|a| a.strip_prefix("c="));
        let final_nonce = attributes.next().and_then(|a| a.strip_prefix("r="));
        if attributes.next().is_some() {
            return ScramStep::Failure(
                "Authentication failed: SCRAM extensions in the client final message are not supported"
                    .to_string(),
            );
        }
        let expected_binding = BASE64.encode(gs2_header);
        if channel_binding != Some(expected_binding.as_str()) {
            return fail();
        }
        // Exactly the server-first nonce (RFC 5802 section 7; Kafka's ScramSaslServer compares
        // with `equals` since it stopped accepting `endsWith`). Old librdkafka (2.0.x, Debian's
        // kcat) sends the client nonce twice and is refused, as by Kafka.
        if final_nonce != Some(nonce) {
            tracing::warn!(
                "SCRAM client-final nonce {final_nonce:?} is not the server-first nonce {nonce:?}"
            );
            return ScramStep::Failure(
                "Invalid client nonce in the final client message.".to_string(),
            );
        }
        if proof.len() != mechanism.hash_len()
            || credential.stored_key.len() != mechanism.hash_len()
        {
            return fail();
        }
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let computed = mechanism.hash(&client_key);
        if !bool::from(computed.ct_eq(&credential.stored_key)) {
            return fail();
        }
        let server_signature = mechanism.hmac(&credential.server_key, auth_message.as_bytes());
        ScramStep::Success {
            username: username.to_string(),
            server_final: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client following RFC 5802 with a fixed nonce.
    fn client_final_for(
        mechanism: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let mut salt = None;
        let mut iterations = 0;
        let mut nonce = "";
        for a in server_first.split(',') {
            if let Some(s) = a.strip_prefix("s=") {
                salt = Some(BASE64.decode(s).unwrap());
            } else if let Some(i) = a.strip_prefix("i=") {
                iterations = i.parse().unwrap();
            } else if let Some(r) = a.strip_prefix("r=") {
                nonce = r;
            }
        }
        let salted = mechanism.salted_password(password.as_bytes(), &salt.unwrap(), iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = mechanism.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = mechanism.hmac(&salted, b"Server Key");
        let expected_server = mechanism.hmac(&server_key, auth.as_bytes());
        (
            format!("{without_proof},p={}", BASE64.encode(proof)),
            format!("v={}", BASE64.encode(expected_server)).into_bytes(),
        )
    }

    fn exchange(mechanism: ScramMechanism, stored_password: &str, password: &str) -> ScramStep {
        let credential = ScramCredential::from_password(mechanism, stored_password, 4096);
        let mut server = ScramServer::new(mechanism);
        let bare = "n=us=3Der,r=fyko+d2lbbFgONRv9qkxdawL";
        let ScramStep::Challenge(first) = server.evaluate(format!("n,,{bare}").as_bytes(), |u| {
            assert_eq!(u, "us=er");
            Some(credential.clone())
        }) else {
            panic!("no challenge");
        };
        let first = String::from_utf8(first).unwrap();
        let (client_final, expected) = client_final_for(mechanism, password, bare, &first);
        let step = server.evaluate(client_final.as_bytes(), |_| None);
        if let ScramStep::Success { server_final, .. } = &step {
            assert_eq!(server_final, &expected);
        }
        step
    }

    #[test]
    fn full_exchange_both_mechanisms() {
        for m in ScramMechanism::ALL {
            assert!(
                matches!(exchange(m, "pencil", "pencil"), ScramStep::Success { ref username, .. } if username == "us=er")
            );
            assert!(matches!(
                exchange(m, "pencil", "pen"),
                ScramStep::Failure(_)
            ));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let inputs: Vec<&[u8]> = vec![
            b"",
            b",",
            b"n",
            b"n,,",
            b"n,,n=",
            b"n,,n=a",
            b"n,,n=a,r=",
            b"x,,n=a,r=b",
            b"p=tls,,n=a,r=b",
            b"n,a=b,n=a,r=b",
            b"n,,n=a=ZZ,r=b",
            b"n,,n=a,r=b,tokenauth=true",
            b"n,,n=a,r=b,m=x",
            &[0xff, 0xfe],
        ];
        for input in inputs {
            let mut server = ScramServer::new(ScramMechanism::ScramSha256);
            let step = server.evaluate(input, |_| {
                Some(ScramCredential::from_password(
                    ScramMechanism::ScramSha256,
                    "x",
                    4096,
                ))
            });
            assert!(matches!(step, ScramStep::Failure(_)), "{input:?}: {step:?}");
        }
        for second in [
            &b""[..],
            b"c=biws",
            b"c=biws,r=x,p=!!",
            b"p=",
            b",p=AAAA",
            &[0xff],
        ] {
            let mut server = ScramServer::new(ScramMechanism::ScramSha512);
            let c = ScramCredential::from_password(ScramMechanism::ScramSha512, "x", 4096);
            assert!(matches!(
                server.evaluate(b"n,,n=a,r=abc", |_| Some(c)),
                ScramStep::Challenge(_)
            ));
            assert!(matches!(
                server.evaluate(second, |_| None),
                ScramStep::Failure(_)
            ));
            assert!(matches!(
                server.evaluate(b"again", |_| None),
                ScramStep::Failure(_)
            ));
        }
    }

    #[test]
    fn unknown_user_fails() {
        let mut server = ScramServer::new(ScramMechanism::ScramSha256);
        assert!(matches!(
            server.evaluate(b"n,,n=nobody,r=abc", |_| None),
            ScramStep::Failure(m) if m.contains("invalid credentials")
        ));
    }
}
