//! Input types that parse rather than validate: once built, they are known good.

use secrecy::SecretString;

use crate::error::ApiError;

pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_CHARS: usize = 1024;

/// A trimmed, lower-cased email address of plausible shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let e = raw.trim().to_lowercase();
        let bad = || {
            ApiError::validation(
                "invalid_email",
                format!("`{}` is not an email address", raw.trim()),
            )
        };
        if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
        let labels_ok = domain.split('.').count() >= 2
            && domain
                .split('.')
                .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
        if local.is_empty() || local.len() > 64 || local.contains('@') || !labels_ok {
            return Err(bad());
        }
        Ok(Email(e))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of at least [`MIN_PASSWORD_CHARS`] characters.
pub struct Password(pub SecretString);

impl Password {
    pub fn parse(raw: String) -> Result<Self, ApiError> {
        let n = raw.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err(ApiError::validation(
                "password_too_short",
                format!("the password must be at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(ApiError::validation(
                "password_too_long",
                format!("the password must be at most {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        Ok(Password(SecretString::from(raw)))
    }
}

/// A display name: trimmed, 1 to `max` characters, no control characters.
pub fn name(field: &'static str, raw: &str, max: usize) -> Result<String, ApiError> {
    let n = raw.trim();
    if n.is_empty() || n.chars().count() > max || n.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "invalid_name",
            format!("`{field}` must be 1 to {max} printable characters"),
        ));
    }
    Ok(n.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_parse_normalised() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@-x.com",
            "a@b@c.com",
            "ann@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert!(Password::parse("elevenchars".into()).is_err());
        assert!(Password::parse("twelve chars".into()).is_ok());
        // Characters, not bytes.
        assert!(Password::parse("ééééééééééé".into()).is_err());
    }
}
