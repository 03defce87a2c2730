//! The one place API errors become HTTP responses.
//!
//! Every error body is `{"error":{"code","message","request_id"}}`. Codes are stable snake_case
//! strings clients may match on. A 500 says nothing internal to the client; its cause is logged
//! once, here, with the request id.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use biz_core::db::DbError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Syntactically bad input: malformed JSON, a bad header.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Well-formed input that breaks a rule: a missing field, a short password.
    #[error("{message}")]
    Validation { code: &'static str, message: String },
    #[error("authentication is required")]
    Unauthenticated,
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// The password was right; a second factor (`totp_code` or `recovery_code`) is needed.
    #[error("this account has MFA on: send totp_code or recovery_code")]
    MfaRequired,
    #[error("the MFA code is wrong, expired or already used")]
    InvalidMfaCode,
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Missing, or belonging to another organisation: the two are indistinguishable on purpose.
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// Over a rate-limit tier's budget; the limiter adds `Retry-After` and the budget headers.
    #[error("too many requests; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the request body must be JSON")]
    UnsupportedMediaType,
    #[error("a dependency is unavailable")]
    Unavailable(String),
    /// A provider or the queue did not answer; the message says which and what to do.
    #[error("{message}")]
    Dependency { code: &'static str, message: String },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// The role is known and too low for this action.
    pub fn role_too_low() -> Self {
        Self::forbidden("insufficient_role", "your role does not allow this action")
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// The same error again, for answers computed once and reported later (the authentication
    /// middleware's). Internal causes are not cloneable; their detail was logged when they
    /// happened, so the copy carries only the message.
    pub fn replay(&self) -> Self {
        match self {
            ApiError::BadRequest { code, message } => ApiError::BadRequest {
                code,
                message: message.clone(),
            },
            ApiError::Validation { code, message } => ApiError::Validation {
                code,
                message: message.clone(),
            },
            ApiError::Unauthenticated => ApiError::Unauthenticated,
            ApiError::InvalidCredentials => ApiError::InvalidCredentials,
            ApiError::MfaRequired => ApiError::MfaRequired,
            ApiError::InvalidMfaCode => ApiError::InvalidMfaCode,
            ApiError::Forbidden { code, message } => ApiError::Forbidden {
                code,
                message: message.clone(),
            },
            ApiError::NotFound => ApiError::NotFound,
            ApiError::Conflict { code, message } => ApiError::Conflict {
                code,
                message: message.clone(),
            },
            ApiError::Gone { code, message } => ApiError::Gone {
                code,
                message: message.clone(),
            },
            ApiError::PayloadTooLarge => ApiError::PayloadTooLarge,
            ApiError::RateLimited { retry_after_secs } => ApiError::RateLimited {
                retry_after_secs: *retry_after_secs,
            },
            ApiError::UnsupportedMediaType => ApiError::UnsupportedMediaType,
            ApiError::Unavailable(r) => ApiError::Unavailable(r.clone()),
            ApiError::Dependency { code, message } => ApiError::Dependency {
                code,
                message: message.clone(),
            },
            ApiError::Internal(e) => ApiError::Internal(anyhow::anyhow!("{e:#}")),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Validation { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Gone { code, .. }
            | ApiError::Dependency { code, .. } => code,
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::MfaRequired => "mfa_required",
            ApiError::InvalidMfaCode => "invalid_mfa_code",
            ApiError::NotFound => "not_found",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(reason) => ApiError::Unavailable(reason),
            e if e.is_not_found() => ApiError::NotFound,
            e => ApiError::Internal(e.into()),
        }
    }
}

/// The error body, as documented in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    pub message: String,
    /// Also sent as the `X-Request-Id` header; quote it when reporting a problem.
    pub request_id: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthenticated
            | ApiError::InvalidCredentials
            | ApiError::MfaRequired
            | ApiError::InvalidMfaCode => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) | ApiError::Dependency { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = request_id::current();
        match self {
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), request_id, "request failed")
            }
            ApiError::Unavailable(reason) => {
                tracing::warn!(reason, request_id, "dependency unavailable")
            }
            _ => {}
        }
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                request_id,
            },
        })
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}
