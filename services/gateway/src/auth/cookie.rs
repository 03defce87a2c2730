//! The dashboard's session cookie.

use actix_web::cookie::{time::Duration, Cookie, SameSite};

pub const NAME: &str = "bi_session";

/// `HttpOnly; Secure; SameSite=Lax`, scoped to the whole site, as long-lived as the session.
pub fn session(token: &str, secure: bool, max_age_hours: i64) -> Cookie<'static> {
    Cookie::build(NAME, token.to_owned())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(Duration::hours(max_age_hours))
        .finish()
}

/// A cookie that makes the browser forget the session.
pub fn cleared(secure: bool) -> Cookie<'static> {
    let mut c = session("", secure, 0);
    c.make_removal();
    c
}
