//! The AES-256-GCM envelope for secrets at rest.
//!
//! Stored form: `v1:{key_id}:{base64url(nonce ‖ ciphertext ‖ tag)}`. The nonce is 96 random bits,
//! fresh per encryption. The caller names what the value belongs to (for example
//! `integrations.credentials:{row id}`) and that string is the associated data, so a ciphertext
//! copied to another row or column fails to decrypt. The key id lets older keys keep decrypting
//! while a rotation re-encrypts everything under the current one.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};

const VERSION: &str = "v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncryptionError {
    #[error("no key with id `{0}` is loaded")]
    UnknownKey(String),
    #[error("the stored value is not a valid envelope")]
    Malformed,
    #[error("the value failed authentication (wrong key, wrong row or tampered)")]
    Authentication,
    #[error("the system random generator failed")]
    Random,
}

/// The plaintext, and whether it came from a legacy unencrypted value that should be re-stored.
pub enum Decrypted {
    Current(SecretString),
    /// Encrypted under an older key id: usable, and due for re-encryption.
    OldKey(SecretString),
    /// Stored in plain text by an earlier version: usable, and due for encryption.
    Legacy(SecretString),
}

impl Decrypted {
    pub fn secret(&self) -> &SecretString {
        match self {
            Decrypted::Current(s) | Decrypted::OldKey(s) | Decrypted::Legacy(s) => s,
        }
    }

    pub fn needs_reencryption(&self) -> bool {
        !matches!(self, Decrypted::Current(_))
    }
}

struct DataKey(LessSafeKey);

/// The loaded data keys: one current, any number still accepted for decryption.
pub struct KeyRing {
    current_id: String,
    keys: HashMap<String, DataKey>,
    rng: SystemRandom,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing")
            .field("current_id", &self.current_id)
            .field("key_ids", &ids)
            .finish()
    }
}

/// PBKDF2-HMAC-SHA256 of the configured passphrase into a 256-bit data key. The salt names the
/// key id, so two ids configured with the same passphrase still get different keys.
fn derive(passphrase: &SecretString, key_id: &str, iterations: u32) -> DataKey {
    let mut bytes = [0u8; 32];
    let iterations = NonZeroU32::new(iterations.max(1)).expect("max(1) is non-zero");
    let salt = format!("bizinsights.envelope.{key_id}");
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt.as_bytes(),
        passphrase.expose_secret().as_bytes(),
        &mut bytes,
    );
    let unbound = UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key");
    bytes.fill(0);
    DataKey(LessSafeKey::new(unbound))
}

impl KeyRing {
    /// A ring whose current key is derived from `passphrase` under `key_id`.
    pub fn new(key_id: &str, passphrase: &SecretString, iterations: u32) -> Self {
        let mut keys = HashMap::new();
        keys.insert(key_id.to_owned(), derive(passphrase, key_id, iterations));
        KeyRing {
            current_id: key_id.to_owned(),
            keys,
            rng: SystemRandom::new(),
        }
    }

    /// The current key and the previous ones (`key_id=passphrase`) from the settings.
    pub fn from_settings(security: &crate::settings::SecuritySettings) -> Self {
        let mut ring = KeyRing::new(
            &security.encryption_key_id,
            &security.encryption_key,
            security.pbkdf2_iterations,
        );
        for previous in &security.previous_encryption_keys {
            if let Some((id, passphrase)) = previous.expose_secret().split_once('=') {
                if id != security.encryption_key_id {
                    ring = ring.with_old_key(
                        id,
                        &SecretString::from(passphrase.to_owned()),
                        security.pbkdf2_iterations,
                    );
                }
            }
        }
        ring
    }

    /// Adds a key that still decrypts but no longer encrypts.
    pub fn with_old_key(
        mut self,
        key_id: &str,
        passphrase: &SecretString,
        iterations: u32,
    ) -> Self {
        self.keys
            .insert(key_id.to_owned(), derive(passphrase, key_id, iterations));
        self
    }

    pub fn current_key_id(&self) -> &str {
        &self.current_id
    }

    /// Encrypts `plaintext` under the current key, bound to `context` (the row's identity).
    pub fn encrypt(&self, plaintext: &str, context: &str) -> Result<String, EncryptionError> {
        let key = &self.keys[&self.current_id];
        let mut nonce_bytes = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce_bytes)
            .map_err(|_| EncryptionError::Random)?;
        let mut in_out = plaintext.as_bytes().to_vec();
        key.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| EncryptionError::Authentication)?;
        let mut blob = nonce_bytes.to_vec();
        blob.extend_from_slice(&in_out);
        Ok(format!(
            "{VERSION}:{}:{}",
            self.current_id,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// Decrypts a stored value. A value without the envelope prefix is a legacy plaintext written
    /// before encryption existed; it is returned as [`Decrypted::Legacy`] for the caller to
    /// re-store encrypted.
    pub fn decrypt(&self, stored: &str, context: &str) -> Result<Decrypted, EncryptionError> {
        let Some(rest) = stored.strip_prefix("v1:") else {
            return Ok(Decrypted::Legacy(SecretString::from(stored.to_owned())));
        };
        let (key_id, body) = rest.split_once(':').ok_or(EncryptionError::Malformed)?;
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| EncryptionError::UnknownKey(key_id.to_owned()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| EncryptionError::Malformed)?;
        if blob.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(EncryptionError::Malformed);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| EncryptionError::Malformed)?;
        let mut in_out = sealed.to_vec();
        let plain = key
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| EncryptionError::Authentication)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| EncryptionError::Malformed)?;
        in_out.fill(0);
        let secret = SecretString::from(text);
        Ok(if key_id == self.current_id {
            Decrypted::Current(secret)
        } else {
            Decrypted::OldKey(secret)
        })
    }

    /// The key id a stored value names, if it is an envelope.
    pub fn key_id_of(stored: &str) -> Option<&str> {
        stored
            .strip_prefix("v1:")?
            .split_once(':')
            .map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: &str, pass: &str) -> KeyRing {
        KeyRing::new(id, &SecretString::from(pass), 1000)
    }

    fn plain(d: Decrypted) -> String {
        d.secret().expose_secret().to_owned()
    }

    #[test]
    fn round_trips_and_uses_a_fresh_nonce_each_time() {
        let r = ring("k1", "a passphrase of at least thirty-two chars");
        let a = r
            .encrypt("sk_live_123", "integrations.credentials:1")
            .unwrap();
        let b = r
            .encrypt("sk_live_123", "integrations.credentials:1")
            .unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("v1:k1:"));
        assert!(!a.contains("sk_live_123"));
        assert_eq!(
            plain(r.decrypt(&a, "integrations.credentials:1").unwrap()),
            "sk_live_123"
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_fails() {
        let r = ring("k1", "a passphrase of at least thirty-two chars");
        let a = r.encrypt("token", "integrations.credentials:1").unwrap();
        assert_eq!(
            r.decrypt(&a, "integrations.credentials:2").err(),
            Some(EncryptionError::Authentication)
        );
    }

    #[test]
    fn a_wrong_key_fails() {
        let a = ring("k1", "a passphrase of at least thirty-two chars")
            .encrypt("token", "ctx")
            .unwrap();
        let other = ring("k1", "another passphrase, also thirty-two chars");
        assert_eq!(
            other.decrypt(&a, "ctx").err(),
            Some(EncryptionError::Authentication)
        );
        let unknown = ring("k2", "a passphrase of at least thirty-two chars");
        assert_eq!(
            unknown.decrypt(&a, "ctx").err(),
            Some(EncryptionError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn tampering_and_garbage_fail_cleanly() {
        let r = ring("k1", "a passphrase of at least thirty-two chars");
        let a = r.encrypt("token", "ctx").unwrap();
        let mut bytes = a.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            r.decrypt(&tampered, "ctx").err(),
            Some(EncryptionError::Authentication)
        );
        assert_eq!(
            r.decrypt("v1:k1:!!", "ctx").err(),
            Some(EncryptionError::Malformed)
        );
        assert_eq!(
            r.decrypt("v1:k1:AAAA", "ctx").err(),
            Some(EncryptionError::Malformed)
        );
        assert_eq!(
            r.decrypt("v1:nokeyid", "ctx").err(),
            Some(EncryptionError::Malformed)
        );
    }

    #[test]
    fn legacy_plaintext_is_read_and_flagged() {
        let r = ring("k1", "a passphrase of at least thirty-two chars");
        let d = r.decrypt("sk_test_legacy", "ctx").unwrap();
        assert!(matches!(d, Decrypted::Legacy(_)));
        assert!(d.needs_reencryption());
        assert_eq!(plain(d), "sk_test_legacy");
    }

    #[test]
    fn old_keys_still_decrypt_after_rotation() {
        let old = ring("k1", "the old passphrase, thirty-two chars or more");
        let a = old.encrypt("token", "ctx").unwrap();
        let rotated = KeyRing::new(
            "k2",
            &SecretString::from("the new passphrase, thirty-two chars or more"),
            1000,
        )
        .with_old_key(
            "k1",
            &SecretString::from("the old passphrase, thirty-two chars or more"),
            1000,
        );
        let d = rotated.decrypt(&a, "ctx").unwrap();
        assert!(matches!(d, Decrypted::OldKey(_)));
        let b = rotated.encrypt("token", "ctx").unwrap();
        assert_eq!(KeyRing::key_id_of(&b), Some("k2"));
        assert!(matches!(
            rotated.decrypt(&b, "ctx").unwrap(),
            Decrypted::Current(_)
        ));
    }

    #[test]
    fn pbkdf2_matches_the_rfc7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, dkLen=64.
        let mut out = [0u8; 64];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(1).unwrap(),
            b"salt",
            b"passwd",
            &mut out,
        );
        assert_eq!(
            hex::encode(out),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
             49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
        );
    }

    #[test]
    fn debug_shows_ids_not_keys() {
        let r = ring("k1", "a passphrase of at least thirty-two chars");
        let s = format!("{r:?}");
        assert!(s.contains("k1"));
        assert!(!s.contains("passphrase"));
    }
}
