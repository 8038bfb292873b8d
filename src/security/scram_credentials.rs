//! SCRAM credentials (RFC 5802): what the broker keeps per user and mechanism -- salt,
//! iteration count, StoredKey and ServerKey -- never the password nor the salted password
//! (Kafka's `ScramCredential`, kept by KRaft in `UserScramCredentialRecord`s).
//!
//! Shard 0 stores them in the durable metadata (`scram_credentials` of
//! `ringtail-metadata.json`) and publishes them with the metadata image to every shard; the
//! SASL/SCRAM server on any shard reads them from its image. Written by
//! AlterUserScramCredentials and by `ringtail storage add-scram` before the first start.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// A SCRAM mechanism with Kafka's ids (`org.apache.kafka.clients.admin.ScramMechanism`:
/// UNKNOWN 0, SCRAM-SHA-256 1, SCRAM-SHA-512 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    /// `SCRAM-SHA-256` (RFC 7677), type 1.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`, type 2.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// Kafka's smallest accepted iteration count (`ScramMechanism.minIterations`, both mechanisms).
pub const MIN_ITERATIONS: i32 = 4096;
/// Kafka's largest accepted iteration count (`ScramFormatter` / `ScramControlManager`: 16384).
pub const MAX_ITERATIONS: i32 = 16384;

impl ScramMechanism {
    /// Both mechanisms.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::ScramSha256, ScramMechanism::ScramSha512];

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn mechanism_name(self) -> &'static str {
        match self {
            ScramMechanism::ScramSha256 => "SCRAM-SHA-256",
            ScramMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// From the SASL mechanism name (exact, as Kafka's `ScramMechanism.forMechanismName`).
    pub fn from_mechanism_name(name: &str) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.mechanism_name() == name)
    }

    /// Kafka's wire id (AlterUserScramCredentials / DescribeUserScramCredentials `Mechanism`).
    pub fn type_id(self) -> i8 {
        match self {
            ScramMechanism::ScramSha256 => 1,
            ScramMechanism::ScramSha512 => 2,
        }
    }

    /// From Kafka's wire id; 0 (UNKNOWN) and others are `None`.
    pub fn from_type_id(id: i8) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.type_id() == id)
    }

    /// Hash output length in bytes (32 / 64).
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::ScramSha256 => 32,
            ScramMechanism::ScramSha512 => 64,
        }
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::ScramSha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, data)`.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        match self {
            ScramMechanism::ScramSha256 => {
                let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("hmac takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::ScramSha512 => {
                let mut mac = <Hmac<Sha512>>::new_from_slice(key).expect("hmac takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// `Hi(password, salt, iterations)` (RFC 5802 section 2.2: PBKDF2 with HMAC-H), the
    /// SaltedPassword.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.hash_len()];
        match self {
            ScramMechanism::ScramSha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::ScramSha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

impl std::fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mechanism_name())
    }
}

/// One user's credential for one mechanism (RFC 5802 section 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    /// The salt, stored base64.
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    /// StoredKey = H(HMAC(SaltedPassword, "Client Key")), stored base64.
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    /// ServerKey = HMAC(SaltedPassword, "Server Key"), stored base64.
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
    /// The iteration count of `Hi()`, 4096-16384.
    pub iterations: i32,
}

impl ScramCredential {
    /// The credential from a SaltedPassword (what AlterUserScramCredentials upserts carry: the
    /// client salts and hashes, the password never reaches the broker).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// The credential for `password` with a fresh random 32-byte salt (seeding with
    /// `ringtail storage add-scram`, as `kafka-storage format --add-scram`).
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        iterations: i32,
    ) -> ScramCredential {
        let salt: [u8; 32] = rand::random();
        Self::from_password_and_salt(mechanism, password, salt.to_vec(), iterations)
    }

    /// The credential for `password` with the given salt.
    pub fn from_password_and_salt(
        mechanism: ScramMechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: i32,
    ) -> ScramCredential {
        let salted =
            mechanism.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
        Self::from_salted_password(mechanism, salt, &salted, iterations)
    }
}

/// Every user's SCRAM credentials: user name -> mechanism -> credential.
pub type ScramCredentials = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

/// Checks an iteration count as Kafka's controller does (UNACCEPTABLE_CREDENTIAL messages).
pub fn check_iterations(iterations: i32) -> Result<(), &'static str> {
    if iterations < MIN_ITERATIONS {
        return Err("Too few iterations");
    }
    if iterations > MAX_ITERATIONS {
        return Err("Too many iterations");
    }
    Ok(())
}

/// Parses a `--add-scram` argument in Kafka's `kafka-storage format` syntax:
/// `SCRAM-SHA-256=[name=alice,password=alice-secret]`, optionally with `iterations=8192` and
/// `salt=<base64>` (or `saltedpassword=<base64>` with `salt`). Values may be double-quoted.
pub fn parse_add_scram(arg: &str) -> Result<(String, ScramMechanism, ScramCredential), String> {
    let (mechanism, rest) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected MECHANISM=[name=...,password=...], got '{arg}'"))?;
    let mechanism = ScramMechanism::from_mechanism_name(mechanism.trim()).ok_or_else(|| {
        format!("unknown SCRAM mechanism '{mechanism}' (SCRAM-SHA-256 or SCRAM-SHA-512)")
    })?;
    let body = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| format!("expected [name=...,password=...] after '=', got '{rest}'"))?;
    let mut fields = BTreeMap::new();
    for item in body.split(',') {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got '{item}'"))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        fields.insert(key.trim().to_ascii_lowercase(), value.to_string());
    }
    let name = fields
        .remove("name")
        .filter(|n| !n.is_empty())
        .ok_or("you must supply 'name' to add-scram")?;
    let iterations = match fields.remove("iterations") {
        Some(i) => i
            .parse::<i32>()
            .map_err(|_| format!("invalid iterations '{i}'"))?,
        None => MIN_ITERATIONS,
    };
    check_iterations(iterations).map_err(|e| format!("{e}: {iterations} (4096-16384)"))?;
    let salt = match fields.remove("salt") {
        Some(s) => BASE64
            .decode(&s)
            .map_err(|e| format!("invalid base64 salt: {e}"))?,
        None => rand::random::<[u8; 32]>().to_vec(),
    };
    let credential = match (fields.remove("password"), fields.remove("saltedpassword")) {
        (Some(password), None) => {
            ScramCredential::from_password_and_salt(mechanism, &password, salt, iterations)
        }
        (None, Some(salted)) => {
            let salted = BASE64
                .decode(&salted)
                .map_err(|e| format!("invalid base64 saltedpassword: {e}"))?;
            ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
        }
        _ => return Err("you must supply exactly one of 'password' or 'saltedpassword'".into()),
    };
    if let Some(unknown) = fields.keys().next() {
        return Err(format!("unknown add-scram field '{unknown}'"));
    }
    Ok((name, mechanism, credential))
}

mod b64 {
    use super::{Engine, BASE64};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3 test vector: user "user", password "pencil", salt
    /// W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
    #[test]
    fn rfc7677_keys() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let c = ScramCredential::from_password_and_salt(
            ScramMechanism::ScramSha256,
            "pencil",
            salt,
            4096,
        );
        // ServerSignature of the RFC's exchange is checked in sasl::scram tests; here the keys
        // must at least have the hash length.
        assert_eq!(c.stored_key.len(), 32);
        assert_eq!(c.server_key.len(), 32);
    }

    #[test]
    fn add_scram_syntax() {
        let (name, m, c) =
            parse_add_scram("SCRAM-SHA-512=[name=admin,password=\"admin-secret\",iterations=8192]")
                .unwrap();
        assert_eq!(
            (name.as_str(), m, c.iterations),
            ("admin", ScramMechanism::ScramSha512, 8192)
        );
        for bad in [
            "SCRAM-SHA-1=[name=a,password=b]",
            "SCRAM-SHA-256=[password=b]",
            "SCRAM-SHA-256=name=a,password=b",
            "SCRAM-SHA-256=[name=a]",
            "SCRAM-SHA-256=[name=a,password=b,iterations=100]",
            "SCRAM-SHA-256=[name=a,password=b,colour=red]",
        ] {
            assert!(parse_add_scram(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let c = ScramCredential::from_password(ScramMechanism::ScramSha256, "x", 4096);
        let mut all = ScramCredentials::new();
        all.entry("u".into())
            .or_default()
            .insert(ScramMechanism::ScramSha256, c);
        let json = serde_json::to_string(&all).unwrap();
        assert!(json.contains("SCRAM-SHA-256"), "{json}");
        let back: ScramCredentials = serde_json::from_str(&json).unwrap();
        assert_eq!(back, all);
    }
}
