use std::time::Duration;

use reqwest::header::HeaderMap;

/// Why a provider call failed, sorted by what the caller should do about it. Messages come from
/// the provider's error body and never contain our credentials.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The credentials were refused (revoked, wrong, or missing a permission). Not retried.
    #[error("the provider refused the credentials: {0}")]
    Unauthorized(String),
    /// Too many requests. Retry after `retry_after` when the provider said, else back off.
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, a timeout, a dropped connection or an unreadable body: worth retrying.
    #[error("the provider is having trouble: {0}")]
    Transient(String),
    /// Any other 4xx: the request itself is wrong; retrying will not help.
    #[error("the provider rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
}

impl ProviderError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. } | ProviderError::Transient(_)
        )
    }

    /// A stable snake_case code for run records and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Unauthorized(_) => "provider_unauthorized",
            ProviderError::RateLimited { .. } => "provider_rate_limited",
            ProviderError::Transient(_) => "provider_unavailable",
            ProviderError::Rejected { .. } => "provider_rejected",
        }
    }

    /// Sorts a transport error. The URL is dropped: it may carry query parameters.
    pub fn from_transport(e: reqwest::Error) -> Self {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_decode() || e.is_body() {
            "sent an unreadable body"
        } else {
            "request failed"
        };
        ProviderError::Transient(what.to_owned())
    }
}

/// `Retry-After` as seconds or an HTTP date, if present and sensible.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date means now"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(ProviderError::Transient("x".into()).is_retryable());
        assert!(ProviderError::RateLimited { retry_after: None }.is_retryable());
        assert!(!ProviderError::Unauthorized("x".into()).is_retryable());
        assert!(!ProviderError::Rejected {
            status: 400,
            message: "x".into()
        }
        .is_retryable());
    }
}
