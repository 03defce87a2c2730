//! Random bearer secrets (session tokens, API keys, invitation tokens, OAuth states) and the
//! hashes they are stored as.
//!
//! A token is 256 random bits, base64url, behind a short prefix that says what it is (so a leaked
//! one is recognisable in a scanner). Only SHA-256 of the whole token is stored: with 256 bits of
//! entropy a fast hash is enough, and lookups stay a single indexed equality.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

pub const SESSION_PREFIX: &str = "bis_";
pub const API_KEY_PREFIX: &str = "bik_";
pub const INVITATION_PREFIX: &str = "bii_";
pub const PASSWORD_RESET_PREFIX: &str = "bir_";

/// 32 random bytes, base64url without padding, behind `prefix`.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random generator is available");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Hex SHA-256, the stored form of a token.
pub fn hash(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_long_and_distinct() {
        let a = generate(API_KEY_PREFIX);
        let b = generate(API_KEY_PREFIX);
        assert!(a.starts_with("bik_"));
        assert_eq!(a.len(), 4 + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
