use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpRequest};
use biz_core::crypto::tokens;
use biz_core::db::accounts::{api_keys, memberships, sessions, Role};
use biz_core::db::Conn;
use uuid::Uuid;

use super::{cookie, csrf};
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub enum Principal {
    User {
        user_id: Uuid,
        session_id: Uuid,
    },
    ApiKey {
        key_id: Uuid,
        organization_id: Uuid,
        role: Role,
    },
}

/// The caller's standing in one organisation, checked.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub organization_id: Uuid,
    pub role: Role,
    pub user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
}

impl Principal {
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Principal::User { user_id, .. } => Some(*user_id),
            Principal::ApiKey { .. } => None,
        }
    }

    pub fn api_key_id(&self) -> Option<Uuid> {
        match self {
            Principal::ApiKey { key_id, .. } => Some(*key_id),
            Principal::User { .. } => None,
        }
    }

    /// Routes that act for a person (creating organisations, accepting invitations) refuse keys.
    pub fn require_user(&self) -> Result<(Uuid, Uuid), ApiError> {
        match self {
            Principal::User {
                user_id,
                session_id,
            } => Ok((*user_id, *session_id)),
            Principal::ApiKey { .. } => Err(ApiError::forbidden(
                "user_session_required",
                "this action needs a signed-in user, not an API key",
            )),
        }
    }

    /// The caller's role in `organization_id`: 404 when none, 403 when below `min`.
    pub async fn require(
        &self,
        conn: &mut Conn,
        organization_id: Uuid,
        min: Role,
    ) -> Result<Access, ApiError> {
        let (role, mfa_missing) = match self {
            Principal::User { user_id, .. } => {
                memberships::standing(conn, organization_id, *user_id)
                    .await?
                    .ok_or(ApiError::NotFound)?
            }
            Principal::ApiKey {
                organization_id: key_org,
                role,
                ..
            } => {
                if *key_org != organization_id {
                    return Err(ApiError::NotFound);
                }
                // Keys are not people: an organisation's MFA requirement is not theirs.
                (*role, false)
            }
        };
        if role < min {
            return Err(ApiError::role_too_low());
        }
        if mfa_missing {
            return Err(ApiError::forbidden(
                "mfa_required_by_organization",
                "this organisation requires MFA: turn it on under /api/v1/auth/mfa first",
            ));
        }
        Ok(Access {
            organization_id,
            role,
            user_id: self.user_id(),
            api_key_id: self.api_key_id(),
        })
    }
}

enum Credential {
    Bearer(String),
    Cookie(String),
}

fn credential(req: &HttpRequest) -> Option<Credential> {
    if let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let v = h.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| Credential::Bearer(token.trim().to_owned()));
    }
    req.cookie(cookie::NAME)
        .map(|c| Credential::Cookie(c.value().to_owned()))
        .filter(|c| !matches!(c, Credential::Cookie(v) if v.is_empty()))
}

/// The signed-in user of a request outside `/api/v1` (the OAuth callbacks, which the browser
/// reaches with its session cookie), if it carries a valid credential.
pub async fn signed_in_user(req: &HttpRequest) -> Option<Uuid> {
    credential(req)?;
    match authenticate(req.clone()).await {
        Ok(Principal::User { user_id, .. }) => Some(user_id),
        _ => None,
    }
}

async fn authenticate(req: HttpRequest) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState missing")))?;
    let (token, from_cookie) = match credential(&req).ok_or(ApiError::Unauthenticated)? {
        Credential::Bearer(t) => (t, false),
        Credential::Cookie(t) => (t, true),
    };
    let hash = tokens::hash(&token);
    let mut conn = state.conn().await?;
    if token.starts_with(tokens::API_KEY_PREFIX) {
        let key = api_keys::find_live(&mut conn, &hash)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        return Ok(Principal::ApiKey {
            key_id: key.id,
            organization_id: key.organization_id,
            role: key.role(),
        });
    }
    let idle = chrono::Duration::minutes(state.settings.security.session_idle_timeout_minutes);
    let session = sessions::find_live(&mut conn, &hash, idle)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if from_cookie && unsafe_method {
        let given = req
            .headers()
            .get(csrf::HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !csrf::verify(&state.settings.security.session_secret, session.id, given) {
            return Err(ApiError::forbidden(
                "csrf_token_invalid",
                "cookie-authenticated changes need the X-CSRF-Token header",
            ));
        }
    }
    Ok(Principal::User {
        user_id: session.user_id,
        session_id: session.id,
    })
}

/// What the authentication middleware found, kept in the request's extensions.
pub struct Authenticated(pub Result<Principal, ApiError>);

/// Authenticates every `/api/v1` request that carries a credential, before any extractor runs.
///
/// Doing this in middleware rather than in the extractor fixes the order of answers: actix polls
/// a handler's extractors together, so an asynchronous credential check could lose the race to a
/// body parser and answer an anonymous caller's bad body with 422 instead of 401.
pub async fn middleware(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    if credential(req.request()).is_some() {
        let outcome = authenticate(req.request().clone()).await;
        req.extensions_mut()
            .insert(std::rc::Rc::new(Authenticated(outcome)));
    }
    next.call(req).await
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        let found = req
            .extensions()
            .get::<std::rc::Rc<Authenticated>>()
            .cloned();
        std::future::ready(match found {
            Some(a) => match &a.0 {
                Ok(p) => Ok(p.clone()),
                Err(e) => Err(e.replay()),
            },
            None => Err(ApiError::Unauthenticated),
        })
    }
}
