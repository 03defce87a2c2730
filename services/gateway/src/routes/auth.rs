//! Signing up, logging in and out, and who am I.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use biz_core::crypto::{password, tokens};
use biz_core::db::accounts::{memberships, organizations, sessions, users, Role};
use biz_core::db::Conn;
use chrono::Utc;
use diesel_async::AsyncConnection;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::organizations::OrganizationView;
use crate::audit::{self, Actor};
use crate::auth::{cookie, csrf, Principal};
use crate::domain::{self, Email, Password};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(signup)
        .service(login)
        .service(logout)
        .service(logout_everywhere)
        .service(change_password)
        .service(forgot_password)
        .service(reset_password)
        .service(me);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    email: String,
    /// At least 12 characters.
    password: String,
    name: String,
    organization_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
    /// The authenticator's code, needed when MFA is on for the account...
    #[serde(default)]
    totp_code: Option<String>,
    /// ...or instead one of its unused recovery codes.
    #[serde(default)]
    recovery_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: String,
}

impl From<&users::User> for UserView {
    fn from(u: &users::User) -> Self {
        UserView {
            id: u.id,
            email: u.email.clone(),
            name: u.name.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupResponse {
    user: UserView,
    organization: OrganizationView,
    /// Bearer token for this session; also set as the `bi_session` cookie.
    token: String,
    /// Send as `X-CSRF-Token` on changes made with the cookie.
    csrf_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    token: String,
    user: UserView,
    csrf_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyIdentity {
    id: Uuid,
    organization_id: Uuid,
    role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The signed-in person; null when the caller is an API key.
    user: Option<UserView>,
    /// Set when the caller is an API key.
    api_key: Option<ApiKeyIdentity>,
    organizations: Vec<OrganizationView>,
    csrf_token: Option<String>,
}

/// Hashing is deliberately slow; keep it off the request threads.
async fn hash_password(p: SecretString) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&p))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

pub(crate) async fn verify_password(p: SecretString, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || password::verify(&p, &hash))
        .await
        .map_err(ApiError::internal)
}

/// A new session's answer: the token, the user and the CSRF token, with the session cookie.
fn session_answer(
    state: &AppState,
    user: &users::User,
    token: &str,
    session_id: Uuid,
) -> HttpResponse {
    let res = HttpResponse::Ok().json(LoginResponse {
        token: token.to_owned(),
        user: UserView::from(user),
        csrf_token: csrf::token(&state.settings.security.session_secret, session_id),
    });
    with_session_cookie(res, state, token)
}

/// 204 with the session cookie cleared.
fn signed_out(state: &AppState) -> HttpResponse {
    let mut res = HttpResponse::NoContent().finish();
    let _ = res.add_cookie(&cookie::cleared(state.settings.security.cookie_secure));
    res
}

/// Starts a session; returns the bearer token (shown to the caller only) and the session id.
async fn start_session(
    conn: &mut Conn,
    state: &AppState,
    user_id: Uuid,
    actor: &Actor,
) -> Result<(String, Uuid), ApiError> {
    let token = tokens::generate(tokens::SESSION_PREFIX);
    let id = Uuid::new_v4();
    let hash = tokens::hash(&token);
    sessions::insert(
        conn,
        &sessions::NewSession {
            id,
            user_id,
            token_hash: &hash,
            expires_at: Utc::now()
                + chrono::Duration::hours(state.settings.security.session_absolute_timeout_hours),
            ip: actor.ip.as_deref(),
            user_agent: actor.user_agent.as_deref(),
        },
    )
    .await?;
    Ok((token, id))
}

fn with_session_cookie(mut res: HttpResponse, state: &AppState, token: &str) -> HttpResponse {
    let c = cookie::session(
        token,
        state.settings.security.cookie_secure,
        state.settings.security.session_absolute_timeout_hours,
    );
    // Building a cookie from our own token cannot produce an invalid header.
    let _ = res.add_cookie(&c);
    res
}

/// Creates a user, their first organisation (they own it) and a session.
#[utoipa::path(
    tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, body = SignupResponse),
        (status = 409, description = "email_taken", body = ErrorBody),
        (status = 422, description = "invalid input", body = ErrorBody),
    )
)]
#[post("/auth/signup")]
async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let email = Email::parse(&body.email)?;
    let password = Password::parse(body.password)?;
    let name = domain::name("name", &body.name, 200)?;
    let org_name = domain::name("organization_name", &body.organization_name, 200)?;
    let password_hash = hash_password(password.0).await?;
    let actor = Actor::from_request(&req, None, None);

    let mut conn = state.conn().await?;
    let state_ref = state.get_ref();
    let (user, org, token, session_id) = conn
        .transaction::<_, ApiError, _>(async move |conn| {
            let user = users::insert(
                conn,
                &users::NewUser {
                    id: Uuid::new_v4(),
                    email: email.as_str(),
                    name: &name,
                    password_hash: &password_hash,
                },
            )
            .await
            .map_err(|e| {
                if e.is_unique_violation() {
                    ApiError::conflict("email_taken", "an account with this email exists")
                } else {
                    e.into()
                }
            })?;
            let org = organizations::insert(conn, Uuid::new_v4(), &org_name).await?;
            memberships::insert(conn, org.id, user.id, Role::Owner).await?;
            let (token, session_id) = start_session(conn, state_ref, user.id, &actor).await?;
            let actor = Actor {
                user_id: Some(user.id),
                ..actor
            };
            audit::record(
                conn,
                &actor,
                Some(org.id),
                "user.signup",
                Some(("user", user.id.to_string())),
                serde_json::json!({}),
            )
            .await?;
            Ok((user, org, token, session_id))
        })
        .await?;
    let csrf_token = csrf::token(&state.settings.security.session_secret, session_id);
    let res = HttpResponse::Created().json(SignupResponse {
        user: UserView::from(&user),
        organization: OrganizationView::new(&org, Role::Owner),
        token: token.clone(),
        csrf_token,
    });
    Ok(with_session_cookie(res, &state, &token))
}

/// Exchanges email and password for a session. The answer is the same, and takes about as long,
/// whether or not the email exists.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "invalid_credentials", body = ErrorBody),
    )
)]
#[post("/auth/login")]
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let actor = Actor::from_request(&req, None, None);
    let email = Email::parse(&body.email).ok();
    let mut conn = state.conn().await?;
    let user = match &email {
        Some(e) => users::find_by_email(&mut conn, e.as_str()).await?,
        None => None,
    };
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_owned());
    let matches = verify_password(SecretString::from(body.password.clone()), stored).await?;
    let Some(user) = user.clone().filter(|_| matches) else {
        // Attributed to the account when the email is one (the log is internal; the answer
        // says nothing either way).
        let attempted = user.as_ref().map(|u| u.id);
        audit::record(
            &mut conn,
            &Actor {
                user_id: attempted,
                ..actor.clone()
            },
            None,
            "auth.login_failed",
            attempted.map(|id| ("user", id.to_string())),
            serde_json::json!({ "email": email.as_ref().map(Email::as_str) }),
        )
        .await?;
        return Err(ApiError::InvalidCredentials);
    };
    let mfa_on = biz_core::db::accounts::mfa::state(&mut conn, user.id)
        .await?
        .is_some_and(|m| m.enabled());
    if mfa_on {
        if let Err(e) = crate::routes::mfa::verify_second_factor(
            &mut conn,
            &state,
            &user,
            body.totp_code.as_deref(),
            body.recovery_code.as_deref(),
        )
        .await
        {
            audit::record(
                &mut conn,
                &Actor {
                    user_id: Some(user.id),
                    ..actor.clone()
                },
                None,
                "auth.login_failed",
                Some(("user", user.id.to_string())),
                serde_json::json!({ "reason": e.code() }),
            )
            .await?;
            return Err(e);
        }
    }
    let (token, session_id) = start_session(&mut conn, &state, user.id, &actor).await?;
    let actor = Actor {
        user_id: Some(user.id),
        ..actor
    };
    audit::record(
        &mut conn,
        &actor,
        None,
        "auth.login",
        Some(("user", user.id.to_string())),
        serde_json::json!({}),
    )
    .await?;
    Ok(session_answer(&state, &user, &token, session_id))
}

/// Ends every session of the caller, on every device, and clears the cookie.
#[utoipa::path(
    tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, description = "called with an API key", body = ErrorBody))
)]
#[post("/auth/logout-everywhere")]
async fn logout_everywhere(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
) -> Result<HttpResponse, ApiError> {
    let (user_id, _) = who.require_user()?;
    let mut conn = state.conn().await?;
    let ended = sessions::revoke_all_for_user(&mut conn, user_id).await?;
    audit::record(
        &mut conn,
        &Actor::from_request(&req, Some(user_id), None),
        None,
        "auth.logout_everywhere",
        Some(("user", user_id.to_string())),
        serde_json::json!({ "sessions": ended }),
    )
    .await?;
    Ok(signed_out(&state))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    /// At least 12 characters.
    new_password: String,
}

/// Changes the password. Every session of the user ends, this one included; the answer carries
/// a fresh session for the caller.
#[utoipa::path(
    tag = "auth",
    request_body = ChangePassword,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody))
)]
#[post("/auth/password/change")]
async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<ChangePassword>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (user_id, _) = who.require_user()?;
    let new = Password::parse(body.new_password)?;
    let mut conn = state.conn().await?;
    let user = users::find(&mut conn, user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    if !verify_password(
        SecretString::from(body.current_password),
        user.password_hash.clone(),
    )
    .await?
    {
        return Err(ApiError::InvalidCredentials);
    }
    let hash = hash_password(new.0).await?;
    let actor = Actor::from_request(&req, Some(user_id), None);
    let (token, session_id) = conn
        .transaction::<_, ApiError, _>(async |conn| {
            users::set_password_hash(conn, user_id, &hash).await?;
            let ended = sessions::revoke_all_for_user(conn, user_id).await?;
            audit::record(
                conn,
                &actor,
                None,
                "auth.password_change",
                Some(("user", user_id.to_string())),
                serde_json::json!({ "sessions_ended": ended }),
            )
            .await?;
            start_session(conn, &state, user_id, &actor).await
        })
        .await?;
    Ok(session_answer(&state, &user, &token, session_id))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    email: String,
}

/// E-mails a single-use reset link (valid `security.password_reset_ttl_minutes`) if the address
/// belongs to an account. The answer is the same either way, and as quick: the e-mail is sent
/// off the request path.
#[utoipa::path(tag = "auth", request_body = ForgotPassword, responses((status = 202), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[post("/auth/password/forgot")]
async fn forgot_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ForgotPassword>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(&body.email)?;
    let mut conn = state.conn().await?;
    if let Some(user) = users::find_by_email(&mut conn, email.as_str()).await? {
        let token = tokens::generate(tokens::PASSWORD_RESET_PREFIX);
        let ttl = chrono::Duration::minutes(state.settings.security.password_reset_ttl_minutes);
        biz_core::db::accounts::password_resets::insert(
            &mut conn,
            user.id,
            &tokens::hash(&token),
            Utc::now() + ttl,
        )
        .await?;
        audit::record(
            &mut conn,
            &Actor::from_request(&req, Some(user.id), None),
            None,
            "auth.password_reset_requested",
            Some(("user", user.id.to_string())),
            serde_json::json!({}),
        )
        .await?;
        let providers = &state.settings.providers;
        let client = connectors::resend::ResendClient::new(
            state.http.clone(),
            &providers.resend_api_base,
            providers.resend_api_key.clone(),
        );
        let from = providers.email_from.clone();
        let text = format!(
            "Someone asked to reset the password of your BizInsights account.\n\n\
             To choose a new one, open this link within {} minutes (it works once):\n\
             {}/reset-password?token={token}\n\n\
             If it was not you, ignore this e-mail: your password stays as it is.\n",
            state.settings.security.password_reset_ttl_minutes,
            state.settings.gateway.public_url.trim_end_matches('/'),
        );
        let (to, user_id) = (user.email.clone(), user.id);
        tokio::spawn(async move {
            let email = connectors::resend::Email {
                from: &from,
                to: &to,
                subject: "Reset your BizInsights password",
                text: &text,
            };
            if let Err(e) = client.send(&email).await {
                tracing::warn!(error = %e, user.id = %user_id, "password reset e-mail not sent");
            }
        });
    }
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "accepted": true })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// From the e-mailed link.
    token: String,
    /// At least 12 characters.
    new_password: String,
}

/// Sets a new password with a reset link's token. Every session of the account ends.
#[utoipa::path(tag = "auth", request_body = ResetPassword, responses((status = 204), (status = 400, description = "invalid_reset_token", body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[post("/auth/password/reset")]
async fn reset_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ResetPassword>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // A bad new password must not burn the link: checked (and hashed) first.
    let hash = hash_password(Password::parse(body.new_password)?.0).await?;
    let token_hash = tokens::hash(&body.token);
    let mut conn = state.conn().await?;
    let actor = Actor::from_request(&req, None, None);
    conn.transaction::<_, ApiError, _>(async |conn| {
        let user_id = biz_core::db::accounts::password_resets::consume(conn, &token_hash)
            .await?
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_reset_token",
                    "this reset link is unknown, used or expired; ask for a new one",
                )
            })?;
        users::set_password_hash(conn, user_id, &hash).await?;
        let ended = sessions::revoke_all_for_user(conn, user_id).await?;
        audit::record(
            conn,
            &Actor {
                user_id: Some(user_id),
                ..actor.clone()
            },
            None,
            "auth.password_reset",
            Some(("user", user_id.to_string())),
            serde_json::json!({ "sessions_ended": ended }),
        )
        .await
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends the current session and clears the cookie.
#[utoipa::path(
    tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, description = "called with an API key", body = ErrorBody))
)]
#[post("/auth/logout")]
async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
) -> Result<HttpResponse, ApiError> {
    let (user_id, session_id) = who.require_user()?;
    let mut conn = state.conn().await?;
    sessions::revoke(&mut conn, session_id).await?;
    audit::record(
        &mut conn,
        &Actor::from_request(&req, Some(user_id), None),
        None,
        "auth.logout",
        Some(("session", session_id.to_string())),
        serde_json::json!({}),
    )
    .await?;
    Ok(signed_out(&state))
}

/// The caller: a user with their organisations, or an API key with its organisation.
#[utoipa::path(tag = "auth", responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody)))]
#[get("/me")]
async fn me(state: web::Data<AppState>, who: Principal) -> Result<web::Json<MeResponse>, ApiError> {
    let mut conn = state.conn().await?;
    match who {
        Principal::User {
            user_id,
            session_id,
        } => {
            let user = users::find(&mut conn, user_id)
                .await?
                .ok_or(ApiError::Unauthenticated)?;
            let orgs = memberships::organizations_of(&mut conn, user_id).await?;
            Ok(web::Json(MeResponse {
                user: Some(UserView::from(&user)),
                api_key: None,
                organizations: orgs
                    .iter()
                    .map(|(o, r)| OrganizationView::new(o, *r))
                    .collect(),
                csrf_token: Some(csrf::token(
                    &state.settings.security.session_secret,
                    session_id,
                )),
            }))
        }
        Principal::ApiKey {
            key_id,
            organization_id,
            role,
        } => {
            let org = organizations::find(&mut conn, organization_id)
                .await?
                .ok_or(ApiError::Unauthenticated)?;
            Ok(web::Json(MeResponse {
                user: None,
                api_key: Some(ApiKeyIdentity {
                    id: key_id,
                    organization_id,
                    role,
                }),
                organizations: vec![OrganizationView::new(&org, role)],
                csrf_token: None,
            }))
        }
    }
}
