//! Cryptography behind small types that never print key material.
//!
//! - [`envelope`]: AES-256-GCM for stored credentials, bound to the row that holds them.
//! - [`signatures`]: the webhook and OAuth verifiers of Stripe, Shopify and WooCommerce.
//! - [`tokens`]: random session tokens, API keys and nonces, stored only as hashes.
//! - [`password`]: argon2id password hashing.

pub mod envelope;
pub mod password;
pub mod signatures;
pub mod tokens;

pub use envelope::{Decrypted, EncryptionError, KeyRing};
