//! CSRF protection for cookie-authenticated requests.
//!
//! A browser sends the session cookie on any request to our origin, including ones a hostile
//! page triggers. A state-changing request authenticated by the cookie must therefore also carry
//! `X-CSRF-Token`, which only our own pages can know: HMAC-SHA256(SESSION_SECRET, session id),
//! returned by signup, login and `GET /me`. Bearer-token callers are not exposed to CSRF and
//! need no such header.

use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

pub const HEADER: &str = "x-csrf-token";

pub fn token(secret: &SecretString, session_id: Uuid) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
    hex::encode(hmac::sign(&key, session_id.as_bytes()).as_ref())
}

pub fn verify(secret: &SecretString, session_id: Uuid, given: &str) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
    match hex::decode(given) {
        Ok(tag) => hmac::verify(&key, session_id.as_bytes(), &tag).is_ok(),
        Err(_) => false,
    }
}
