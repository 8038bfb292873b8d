//! SASL/PLAIN server (RFC 4616), as Kafka's `PlainSaslServer` with the JAAS users of
//! `PlainServerCallbackHandler`. One message: `[authzid] NUL authcid NUL passwd`.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;

/// Checks one PLAIN message against `users` (user -> password). `Ok(username)` on success; the
/// error is the message Kafka sends with SASL_AUTHENTICATION_FAILED.
pub fn authenticate(token: &[u8], users: &BTreeMap<String, String>) -> Result<String, String> {
    let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
    if parts.len() != 3 {
        return Err(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            parts.len()
        ));
    }
    let authorization_id = String::from_utf8_lossy(parts[0]);
    let username = String::from_utf8_lossy(parts[1]).into_owned();
    let password = parts[2];
    if username.is_empty() {
        return Err("Authentication failed: username not specified".to_string());
    }
    if password.is_empty() {
        return Err("Authentication failed: password not specified".to_string());
    }
    // Compare whatever the user: a missing user costs the same as a wrong password.
    let expected = users.get(&username);
    let candidate = expected.map_or(&[][..], |p| p.as_bytes());
    let equal: bool = candidate.ct_eq(password).into();
    if expected.is_none() || !equal {
        return Err("Authentication failed: Invalid username or password".to_string());
    }
    if !authorization_id.is_empty() && authorization_id != username {
        return Err(
            "Authentication failed: Client requested an authorization id that is different from username"
                .to_string(),
        );
    }
    Ok(username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens() {
        let users = BTreeMap::from([("alice".to_string(), "secret".to_string())]);
        assert_eq!(authenticate(b"\0alice\0secret", &users).unwrap(), "alice");
        assert_eq!(
            authenticate(b"alice\0alice\0secret", &users).unwrap(),
            "alice"
        );
        assert!(authenticate(b"bob\0alice\0secret", &users).is_err());
        assert!(authenticate(b"\0alice\0wrong", &users)
            .unwrap_err()
            .contains("Invalid username or password"));
        assert!(authenticate(b"\0mallory\0secret", &users).is_err());
        assert!(authenticate(b"\0alice\0", &users).is_err());
        assert!(authenticate(b"\0\0secret", &users).is_err());
        assert!(authenticate(b"garbage", &users).is_err());
        assert!(authenticate(b"", &users).is_err());
        assert!(authenticate(b"\0a\0b\0c", &users).is_err());
        assert!(authenticate(&[0xff, 0, 0xfe, 0, 0xfd], &users).is_err());
    }
}
