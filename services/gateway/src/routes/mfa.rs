//! TOTP MFA (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step) with ten single-use recovery codes.
//!
//! Setup makes a secret (sealed at rest with the credential envelope) and shows it with its
//! `otpauth://` URI and a QR code; enabling needs a valid code and answers the recovery codes,
//! once (stored as SHA-256 hashes). A code is accepted once: its time step must be later than
//! the last one accepted. Disabling needs the password and a code.

use actix_web::{post, web, HttpRequest, HttpResponse};
use biz_core::crypto::tokens;
use biz_core::db::accounts::{mfa, users};
use biz_core::db::Conn;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use totp_rs::{Secret, Totp};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(setup).service(enable).service(disable);
}

const ISSUER: &str = "BizInsights";
const RECOVERY_CODES: usize = 10;

/// What the sealed secret is bound to: this user's row (`{table}.{column}:{id}`, as
/// `db::rotation` names it too).
fn context(user_id: Uuid) -> String {
    format!("users.totp_secret:{user_id}")
}

fn totp(secret_base32: &str, email: &str) -> Result<Totp, ApiError> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored TOTP secret: {e:?}")))?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name(email)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| ApiError::internal(anyhow::anyhow!("TOTP parameters: {e:?}")))
}

/// The user's TOTP, from the sealed secret.
fn open(state: &AppState, user: &users::User, sealed: &str) -> Result<Totp, ApiError> {
    let secret = state
        .keys
        .decrypt(sealed, &context(user.id))
        .map_err(ApiError::internal)?;
    totp(secret.secret().expose_secret(), &user.email)
}

/// 160 random bits (RFC 4226's recommended secret length).
fn random_secret() -> Secret {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 20];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random generator is available");
    Secret::from(bytes.to_vec())
}

fn now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Recovery codes are compared without dashes, spaces or case.
fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Checks a second factor for `user`, whose MFA is on: a TOTP code (each step accepted once)
/// or an unused recovery code (spent now).
pub async fn verify_second_factor(
    conn: &mut Conn,
    state: &AppState,
    user: &users::User,
    totp_code: Option<&str>,
    recovery_code: Option<&str>,
) -> Result<(), ApiError> {
    let mfa = mfa::state(conn, user.id).await?.ok_or(ApiError::NotFound)?;
    let sealed = mfa.totp_secret.as_deref().ok_or(ApiError::MfaRequired)?;
    if let Some(code) = totp_code {
        let step = open(state, user, sealed)?.check(code.trim(), now());
        return match step {
            Some(step) if mfa::accept_step(conn, user.id, step as i64).await? => Ok(()),
            _ => Err(ApiError::InvalidMfaCode),
        };
    }
    if let Some(code) = recovery_code {
        let hash = tokens::hash(&normalise(code));
        return if mfa::use_recovery_code(conn, user.id, &hash).await? {
            Ok(())
        } else {
            Err(ApiError::InvalidMfaCode)
        };
    }
    Err(ApiError::MfaRequired)
}

async fn signed_in_user(conn: &mut Conn, who: &Principal) -> Result<(users::User, Uuid), ApiError> {
    let (user_id, _) = who.require_user()?;
    let user = users::find(conn, user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok((user, user_id))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetup {
    /// Base32, for typing into an authenticator by hand.
    secret: String,
    otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    qr_svg: String,
}

/// Starts (or restarts) TOTP setup: a new secret, not in force until enabled with a code.
#[utoipa::path(tag = "auth", responses((status = 200, body = TotpSetup), (status = 401, body = ErrorBody), (status = 409, description = "mfa_already_enabled", body = ErrorBody)))]
#[post("/auth/mfa/totp/setup")]
async fn setup(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
) -> Result<web::Json<TotpSetup>, ApiError> {
    let mut conn = state.conn().await?;
    let (user, user_id) = signed_in_user(&mut conn, &who).await?;
    let secret = random_secret().to_base32();
    let sealed = state
        .keys
        .encrypt(&secret, &context(user_id))
        .map_err(ApiError::internal)?;
    if !mfa::set_pending_secret(&mut conn, user_id, &sealed).await? {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "MFA is already on; disable it first to change the authenticator",
        ));
    }
    let uri = totp(&secret, &user.email)?
        .to_url()
        .map_err(|e| ApiError::internal(anyhow::anyhow!("otpauth URI: {e:?}")))?;
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map_err(ApiError::internal)?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    audit::record(
        &mut conn,
        &Actor::from_request(&req, Some(user_id), None),
        None,
        "mfa.setup",
        Some(("user", user_id.to_string())),
        serde_json::json!({}),
    )
    .await?;
    Ok(web::Json(TotpSetup {
        secret,
        otpauth_uri: uri,
        qr_svg,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableTotp {
    /// The authenticator's current 6-digit code.
    code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes, shown this once: each replaces a TOTP code one time.
    recovery_codes: Vec<String>,
}

/// Turns MFA on with a code from the authenticator set up just before.
#[utoipa::path(tag = "auth", request_body = EnableTotp, responses((status = 200, body = RecoveryCodes), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/auth/mfa/totp/enable")]
async fn enable(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<EnableTotp>,
) -> Result<web::Json<RecoveryCodes>, ApiError> {
    let mut conn = state.conn().await?;
    let (user, user_id) = signed_in_user(&mut conn, &who).await?;
    let current = mfa::state(&mut conn, user_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    if current.enabled() {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "MFA is already on",
        ));
    }
    let sealed = current
        .totp_secret
        .as_deref()
        .ok_or_else(|| ApiError::validation("mfa_not_set_up", "call …/mfa/totp/setup first"))?;
    let step = open(&state, &user, sealed)?
        .check(body.code.trim(), now())
        .ok_or(ApiError::InvalidMfaCode)?;
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            // 80 random bits as 16 base32 characters, in groups of four.
            let raw = random_secret().to_base32();
            raw.as_bytes()
                .chunks(4)
                .take(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect();
    let hashes: Vec<String> = codes.iter().map(|c| tokens::hash(&normalise(c))).collect();
    if !mfa::enable(&mut conn, user_id, step as i64, &hashes).await? {
        return Err(ApiError::InvalidMfaCode);
    }
    audit::record(
        &mut conn,
        &Actor::from_request(&req, Some(user_id), None),
        None,
        "mfa.enable",
        Some(("user", user_id.to_string())),
        serde_json::json!({ "recovery_codes": RECOVERY_CODES }),
    )
    .await?;
    Ok(web::Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableTotp {
    password: String,
    /// A current TOTP code or an unused recovery code.
    code: String,
}

/// Turns MFA off; needs the password and a code.
#[utoipa::path(tag = "auth", request_body = DisableTotp, responses((status = 204), (status = 401, body = ErrorBody)))]
#[post("/auth/mfa/totp/disable")]
async fn disable(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    body: web::Json<DisableTotp>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut conn = state.conn().await?;
    let (user, user_id) = signed_in_user(&mut conn, &who).await?;
    if !crate::routes::auth::verify_password(
        SecretString::from(body.password),
        user.password_hash.clone(),
    )
    .await?
    {
        return Err(ApiError::InvalidCredentials);
    }
    let is_totp =
        body.code.trim().len() == 6 && body.code.trim().bytes().all(|b| b.is_ascii_digit());
    let (totp_code, recovery) = if is_totp {
        (Some(body.code.as_str()), None)
    } else {
        (None, Some(body.code.as_str()))
    };
    verify_second_factor(&mut conn, &state, &user, totp_code, recovery).await?;
    mfa::disable(&mut conn, user_id).await?;
    audit::record(
        &mut conn,
        &Actor::from_request(&req, Some(user_id), None),
        None,
        "mfa.disable",
        Some(("user", user_id.to_string())),
        serde_json::json!({}),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
