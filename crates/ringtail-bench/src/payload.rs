//! Record values: random letters as kafka-producer-perf-test makes them, realistic JSON-like
//! documents that compress as real event data does, or lines of a file.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Where record values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// One value of random uppercase letters reused for every record, as
    /// kafka-producer-perf-test does without `--payload-file`.
    Random,
    /// A pool of 1,024 distinct JSON-like event documents (ids, timestamps, URLs, nested items).
    Json,
}

/// A pool of values handed out in turn.
#[derive(Debug, Clone)]
pub struct Payloads {
    pool: Vec<Vec<u8>>,
}

/// The payload file was unusable.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Reading the file failed.
    #[error("cannot read payload file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// No non-empty record in the file.
    #[error("payload file {path} holds no records")]
    Empty { path: String },
}

impl Payloads {
    /// Values of `record_size` bytes of `kind`.
    pub fn generate(kind: PayloadKind, record_size: usize, seed: u64) -> Payloads {
        let mut rng = StdRng::seed_from_u64(seed);
        let pool = match kind {
            PayloadKind::Random => vec![(0..record_size)
                .map(|_| rng.gen_range(b'A'..=b'Z'))
                .collect()],
            PayloadKind::Json => (0..1024)
                .map(|_| json_document(&mut rng, record_size))
                .collect(),
        };
        Payloads { pool }
    }

    /// Records split from a file by `delimiter`, as kafka-producer-perf-test's
    /// `--payload-file` and `--payload-delimiter` do.
    pub fn from_file(path: &str, delimiter: &str) -> Result<Payloads, PayloadError> {
        let text = std::fs::read(path).map_err(|source| PayloadError::Read {
            path: path.to_string(),
            source,
        })?;
        let delimiter = delimiter.as_bytes();
        let mut pool = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i + delimiter.len() <= text.len() {
            if !delimiter.is_empty() && &text[i..i + delimiter.len()] == delimiter {
                pool.push(text[start..i].to_vec());
                i += delimiter.len();
                start = i;
            } else {
                i += 1;
            }
        }
        pool.push(text[start..].to_vec());
        pool.retain(|p| !p.is_empty());
        if pool.is_empty() {
            return Err(PayloadError::Empty {
                path: path.to_string(),
            });
        }
        Ok(Payloads { pool })
    }

    /// The value for record number `index`.
    pub fn get(&self, index: u64) -> &[u8] {
        &self.pool[(index % self.pool.len() as u64) as usize]
    }

    /// Mean value size in bytes.
    pub fn mean_bytes(&self) -> f64 {
        self.pool.iter().map(Vec::len).sum::<usize>() as f64 / self.pool.len() as f64
    }
}

const ACTIONS: &[&str] = &[
    "page_view",
    "add_to_cart",
    "checkout",
    "search",
    "login",
    "logout",
    "purchase",
];
const COUNTRIES: &[&str] = &["DE", "FR", "US", "GB", "JP", "BR", "IN", "NL", "SE", "ES"];
const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];
const PATHS: &[&str] = &["products", "cart", "search", "account", "orders", "help"];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
];

/// One event document of exactly `size` bytes (cut, then closed with `}` when long enough).
fn json_document(rng: &mut StdRng, size: usize) -> Vec<u8> {
    let mut doc = format!(
        "{{\"event_id\":\"{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}\",\"ts\":{},\"action\":\"{}\",\"user\":{{\"id\":{},\"name\":\"{}\",\"country\":\"{}\"}},\"url\":\"https://shop.example.com/{}/{}?ref=campaign-{}\",\"user_agent\":\"{}\",\"items\":[",
        rng.gen::<u32>(),
        rng.gen::<u16>(),
        rng.gen_range(0..0xfff),
        rng.gen::<u16>(),
        rng.gen::<u64>() & 0xffff_ffff_ffff,
        1_700_000_000_000u64 + rng.gen_range(0..10_000_000),
        ACTIONS[rng.gen_range(0..ACTIONS.len())],
        rng.gen_range(1..1_000_000),
        NAMES[rng.gen_range(0..NAMES.len())],
        COUNTRIES[rng.gen_range(0..COUNTRIES.len())],
        PATHS[rng.gen_range(0..PATHS.len())],
        rng.gen_range(1..100_000),
        rng.gen_range(1..50),
        AGENTS[rng.gen_range(0..AGENTS.len())],
    );
    let mut first = true;
    while doc.len() < size {
        if !first {
            doc.push(',');
        }
        first = false;
        doc.push_str(&format!(
            "{{\"sku\":\"SKU-{:06}\",\"qty\":{},\"price\":{}.{:02},\"currency\":\"EUR\"}}",
            rng.gen_range(0..1_000_000),
            rng.gen_range(1..5),
            rng.gen_range(1..500),
            rng.gen_range(0..100)
        ));
    }
    doc.push_str("]}");
    let mut bytes = doc.into_bytes();
    bytes.truncate(size);
    if size >= 2 {
        bytes[size - 1] = b'}';
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_the_record_size() {
        for kind in [PayloadKind::Random, PayloadKind::Json] {
            for size in [1, 100, 1024, 10_000] {
                let payloads = Payloads::generate(kind, size, 1);
                assert_eq!(payloads.get(0).len(), size);
                assert_eq!(payloads.get(7).len(), size);
            }
        }
    }

    #[test]
    fn json_compresses_like_real_data() {
        let payloads = Payloads::generate(PayloadKind::Json, 1024, 1);
        let all: Vec<u8> = (0..64).flat_map(|i| payloads.get(i).to_vec()).collect();
        let compressed = zstd::bulk::compress(&all, 3).unwrap();
        let ratio = all.len() as f64 / compressed.len() as f64;
        assert!(ratio > 2.0 && ratio < 20.0, "ratio {ratio}");
    }
}
