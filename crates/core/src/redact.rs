//! Log redaction: the last line of defence between a secret and a log line.
//!
//! The first line is a field convention: secrets travel as `SecretString` (whose `Debug` prints
//! `[REDACTED]`), handlers log ids and codes, never bodies, and the request span records the
//! path without its query. This writer then scrubs every formatted log line before it leaves the
//! process: values that look like our tokens or a provider's keys, `Bearer` credentials, and the
//! value of any field, query parameter or JSON member whose name says it is secret.

use std::borrow::Cow;
use std::io;

use tracing_subscriber::fmt::MakeWriter;

const MASK: &str = "[REDACTED]";

/// Prefixes of secret values: ours (`crypto::tokens`), Stripe's secret and restricted keys,
/// webhook signing secrets, Connect OAuth codes and tokens, Shopify's tokens, Resend's keys.
const SECRET_PREFIXES: [&str; 15] = [
    "bis_", "bik_", "bii_", "bir_", "re_", "sk_test_", "sk_live_", "rk_test_", "rk_live_",
    "whsec_", "ac_", "shpat_", "shpca_", "shppa_", "shpss_",
];

/// Names whose value is a secret wherever they appear: `name=value`, `name: value`,
/// `"name":"value"`.
const SECRET_NAMES: [&str; 16] = [
    "password",
    "current_password",
    "new_password",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "secret",
    "client_secret",
    "webhook_secret",
    "totp_code",
    "recovery_code",
    "code",
    "authorization",
    "cookie",
    "credentials",
];

fn is_value_char(c: char) -> bool {
    // Brackets too, so that an already masked `bis_[REDACTED]` is taken as one value.
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '-' | '.' | '~' | '+' | '/' | '=' | '%' | '[' | ']')
}

/// `line` with every secret-looking value masked.
pub fn redact(line: &str) -> Cow<'_, str> {
    let mut out = line.to_owned();
    let mut changed = false;
    // Known prefixes: keep the prefix (it says what it was), mask the rest.
    for prefix in SECRET_PREFIXES {
        let mut from = 0;
        while let Some(at) = out[from..].find(prefix).map(|i| i + from) {
            let preceded_by_word = out[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
            let start = at + prefix.len();
            let len = out[start..]
                .find(|c: char| !is_value_char(c))
                .unwrap_or(out.len() - start);
            if preceded_by_word || len < 6 || out[start..].starts_with(MASK) {
                from = start;
                continue;
            }
            out.replace_range(start..start + len, MASK);
            changed = true;
            from = start + MASK.len();
        }
    }
    // `Bearer x`, `Basic x`.
    for scheme in ["Bearer ", "bearer ", "Basic ", "basic "] {
        let mut from = 0;
        while let Some(at) = out[from..].find(scheme).map(|i| i + from) {
            let start = at + scheme.len();
            let len = out[start..]
                .find(|c: char| !is_value_char(c))
                .unwrap_or(out.len() - start);
            if len == 0 || &out[start..start + len] == MASK {
                from = start + len;
                continue;
            }
            out.replace_range(start..start + len, MASK);
            changed = true;
            from = start + MASK.len();
        }
    }
    // Named values.
    for name in SECRET_NAMES {
        let mut from = 0;
        while let Some(at) = out[from..].find(name).map(|i| i + from) {
            let end_of_name = at + name.len();
            let word_before = out[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let word_after = out[end_of_name..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if word_before || word_after {
                from = end_of_name;
                continue;
            }
            // The separator: `=`, `: `, `":"`, `": "`.
            let rest = &out[end_of_name..];
            let sep = ["\":\"", "\": \"", "=\"", "=", ": ", ":"]
                .iter()
                .find(|s| rest.starts_with(**s))
                .map(|s| s.len());
            let Some(sep) = sep else {
                from = end_of_name;
                continue;
            };
            let start = end_of_name + sep;
            let quoted = out[..start].ends_with('"');
            let len = if quoted {
                out[start..].find('"').unwrap_or(out.len() - start)
            } else {
                out[start..]
                    .find(|c: char| !is_value_char(c))
                    .unwrap_or(out.len() - start)
            };
            if len == 0 || &out[start..start + len] == MASK {
                from = start + len;
                continue;
            }
            out.replace_range(start..start + len, MASK);
            changed = true;
            from = start + MASK.len();
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(line)
    }
}

/// Wraps a writer maker so that everything written passes through [`redact`].
#[derive(Clone)]
pub struct Redacting<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.make_writer())
    }
}

pub struct RedactingWriter<W>(W);

impl<W: io::Write> io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole event per write.
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_is_kept() {
        let line = "authorization: Bearer bis_q8Zx0l1k2j3h4g5f6d7s8a9p cookie=bis_abcdefghijk1";
        let out = redact(line);
        assert!(
            !out.contains("q8Zx0l1k2j3h4g5f6d7s8a9p") && !out.contains("abcdefghijk1"),
            "{out}"
        );
        assert!(out.starts_with("authorization: "), "{out}");
        let cases = [
            (
                "connecting with sk_test_51AbCdEfGhIjKlMn0123",
                "connecting with sk_test_[REDACTED]",
            ),
            (
                "auth header=Bearer abcdefghijklmnop next",
                "auth header=Bearer [REDACTED] next",
            ),
            (
                r#"body {"email":"a@b.c","password":"hunter2 hunter2"}"#,
                r#"body {"email":"a@b.c","password":"[REDACTED]"}"#,
            ),
            (
                "GET /oauth/stripe/callback?code=ac_XYZ123456789&state=abc",
                "GET /oauth/stripe/callback?code=[REDACTED]&state=abc",
            ),
            (
                "http.status=200 duration_ms=3",
                "http.status=200 duration_ms=3",
            ),
            (
                "webhook_secret=whsec_abcdefghijkl",
                "webhook_secret=[REDACTED]",
            ),
            // Words that merely contain a name are left alone.
            (
                "the barcode= is fine; error_code=invalid",
                "the barcode= is fine; error_code=invalid",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }
}
