//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, OWASP's
//! recommended minimum).

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

/// PHC string (`$argon2id$v=19$...`) with a fresh random salt.
pub fn hash(password: &SecretString) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// True when `password` matches the stored PHC string. A malformed stored hash never matches.
pub fn verify(password: &SecretString, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok()
}

/// A valid hash of a password nobody knows. Login verifies against it when the email is unknown,
/// so both paths cost one argon2 verification and take about the same time.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash(&SecretString::from(crate::crypto::tokens::generate("")))
            .expect("hashing a random password succeeds")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_argon2id_and_verifies() {
        let pw = SecretString::from("correct horse battery staple");
        let h = hash(&pw).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&pw, &h));
        assert!(!verify(&SecretString::from("wrong password!!"), &h));
        assert!(!verify(&pw, "not a hash"));
        assert!(!verify(&pw, dummy_hash()));
    }
}
