//! Verifiers for what providers sign: checked on the raw bytes, before anything is parsed, and
//! compared in constant time (`ring::hmac::verify`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::hmac;

/// Stripe's default tolerance, also the contract's: |now − t| ≤ 300 s.
pub const STRIPE_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the signature is missing")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature timestamp is outside the tolerance")]
    Expired,
    #[error("the signature does not match")]
    Mismatch,
}

impl SignatureError {
    /// Stable code for the API error body.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::Expired => "signature_expired",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

/// Verifies a `Stripe-Signature` header (`t=…,v1=…[,v1=…]`) over the raw body: valid when any
/// `v1` equals hex HMAC-SHA256(secret, "{t}.{body}") and the timestamp is within the tolerance
/// on either side of `now` (a timestamp from the future is as suspect as a stale one).
pub fn verify_stripe(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<&str> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => timestamp = Some(v),
            // A v1 that is not hex cannot match; keep looking at the others.
            "v1" => candidates.extend(hex::decode(v).ok()),
            _ => {} // v0 and future schemes are ignored, as Stripe's own libraries do.
        }
    }
    let t_str = timestamp.ok_or(SignatureError::Malformed)?;
    let t: i64 = t_str.parse().map_err(|_| SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now_unix - t).abs() > tolerance_secs {
        return Err(SignatureError::Expired);
    }
    let mut signed = Vec::with_capacity(t_str.len() + 1 + body.len());
    signed.extend_from_slice(t_str.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let key = key(secret);
    // Every candidate is checked, so the time taken does not reveal which one matched.
    let mut any = false;
    for candidate in &candidates {
        any |= hmac::verify(&key, &signed, candidate).is_ok();
    }
    if any {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Builds a `Stripe-Signature` header; used by the simulator and tests.
pub fn sign_stripe(body: &[u8], secret: &[u8], t: i64) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let tag = hmac::sign(&key(secret), &signed);
    format!("t={t},v1={}", hex::encode(tag.as_ref()))
}

/// Base64 HMAC-SHA256 of a raw body: Shopify's `X-Shopify-Hmac-Sha256` and WooCommerce's
/// `X-WC-Webhook-Signature` are both this.
pub fn verify_body_base64(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let tag = STANDARD
        .decode(header)
        .map_err(|_| SignatureError::Malformed)?;
    hmac::verify(&key(secret), body, &tag).map_err(|_| SignatureError::Mismatch)
}

/// Signs a body the way [`verify_body_base64`] checks it.
pub fn sign_body_base64(body: &[u8], secret: &[u8]) -> String {
    STANDARD.encode(hmac::sign(&key(secret), body).as_ref())
}

/// The message Shopify signs for an OAuth redirect: every query parameter but `hmac` and
/// `signature`, sorted by key, joined as `k=v&…`, with `%` and `&` escaped in keys and values and
/// `=` escaped in keys (Shopify's "verify a request" rules). Takes decoded pairs.
pub fn shopify_query_message(params: &[(String, String)]) -> String {
    fn escape(s: &str, is_key: bool) -> String {
        let mut out = s.replace('%', "%25").replace('&', "%26");
        if is_key {
            out = out.replace('=', "%3D");
        }
        out
    }
    let mut kept: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "hmac" && k != "signature")
        .map(|(k, v)| (escape(k, true), escape(v, false)))
        .collect();
    kept.sort();
    kept.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Verifies the hex `hmac` of a Shopify OAuth redirect over the other parameters.
pub fn verify_shopify_query(
    params: &[(String, String)],
    secret: &[u8],
) -> Result<(), SignatureError> {
    let given = params
        .iter()
        .find(|(k, _)| k == "hmac")
        .map(|(_, v)| v.as_str())
        .ok_or(SignatureError::Missing)?;
    let tag = hex::decode(given).map_err(|_| SignatureError::Malformed)?;
    let message = shopify_query_message(params);
    hmac::verify(&key(secret), message.as_bytes(), &tag).map_err(|_| SignatureError::Mismatch)
}

/// Signs Shopify OAuth query parameters; used by the simulator and tests.
pub fn sign_shopify_query(params: &[(String, String)], secret: &[u8]) -> String {
    hex::encode(hmac::sign(&key(secret), shopify_query_message(params).as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently (Python's hmac module); see the crate's docs.
    const STRIPE_BODY: &[u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    const STRIPE_SECRET: &[u8] = b"whsec_test_secret";
    const STRIPE_V1: &str = "c0475716eb2200f1fe97fcf35a3c05d1fd4f8ba9a07a596730c8d18bb87c0672";
    const T: i64 = 1_700_000_000;

    fn stripe(
        header: Option<&str>,
        body: &[u8],
        secret: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        verify_stripe(header, body, secret, now, STRIPE_TOLERANCE_SECS)
    }

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        let tag = hmac::sign(&key(b"Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn stripe_accepts_the_known_vector_and_any_matching_v1() {
        let header = format!("t={T},v1={STRIPE_V1}");
        assert_eq!(stripe(Some(&header), STRIPE_BODY, STRIPE_SECRET, T), Ok(()));
        assert_eq!(sign_stripe(STRIPE_BODY, STRIPE_SECRET, T), header);
        // Several v1 (during a secret roll), the good one last, plus a v0 to ignore.
        let rolled = format!("t={T},v1={},v0=abc,v1={STRIPE_V1}", "00".repeat(32));
        assert_eq!(
            stripe(Some(&rolled), STRIPE_BODY, STRIPE_SECRET, T + 299),
            Ok(())
        );
    }

    #[test]
    fn stripe_rejects_tampered_wrong_secret_expired_and_future() {
        let header = format!("t={T},v1={STRIPE_V1}");
        let tampered = br#"{"id":"evt_1","type":"charge.refunded"}"#;
        assert_eq!(
            stripe(Some(&header), tampered, STRIPE_SECRET, T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            stripe(Some(&header), STRIPE_BODY, b"whsec_other", T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            stripe(Some(&header), STRIPE_BODY, STRIPE_SECRET, T + 301),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            stripe(Some(&header), STRIPE_BODY, STRIPE_SECRET, T - 301),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            stripe(Some(&header), STRIPE_BODY, STRIPE_SECRET, T + 300),
            Ok(())
        );
    }

    #[test]
    fn stripe_rejects_missing_and_malformed_headers() {
        assert_eq!(
            stripe(None, STRIPE_BODY, STRIPE_SECRET, T),
            Err(SignatureError::Missing)
        );
        for bad in [
            "",
            "garbage",
            "t=abc,v1=00",
            &format!("v1={STRIPE_V1}"),
            &format!("t={T}"),
        ] {
            assert_eq!(
                stripe(Some(bad), STRIPE_BODY, STRIPE_SECRET, T),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A v1 that is not hex is skipped; with nothing else to check, the header is malformed.
        assert_eq!(
            stripe(Some(&format!("t={T},v1=zz")), STRIPE_BODY, STRIPE_SECRET, T),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn shopify_oauth_query_matches_shopifys_documented_example() {
        // Shopify's "verify a request" example: secret "hush".
        let params: Vec<(String, String)> = [
            ("code", "0907a61c0c8d55e99db179b68161bc00"),
            (
                "hmac",
                "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf",
            ),
            ("shop", "some-shop.myshopify.com"),
            ("state", "0.6784241404160823"),
            ("timestamp", "1337178173"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(verify_shopify_query(&params, b"hush"), Ok(()));
        assert_eq!(
            verify_shopify_query(&params, b"wrong"),
            Err(SignatureError::Mismatch)
        );
        let mut tampered = params.clone();
        tampered[2].1 = "evil-shop.myshopify.com".into();
        assert_eq!(
            verify_shopify_query(&tampered, b"hush"),
            Err(SignatureError::Mismatch)
        );
        let without: Vec<_> = params
            .iter()
            .filter(|(k, _)| k != "hmac")
            .cloned()
            .collect();
        assert_eq!(
            verify_shopify_query(&without, b"hush"),
            Err(SignatureError::Missing)
        );
        assert_eq!(sign_shopify_query(&params, b"hush"), params[1].1);
    }

    #[test]
    fn shopify_query_escapes_separators() {
        let p = vec![
            ("b".to_string(), "x&y=1%".to_string()),
            ("a=".to_string(), "v".to_string()),
        ];
        assert_eq!(shopify_query_message(&p), "a%3D=v&b=x%26y=1%25");
    }

    #[test]
    fn body_hmacs_match_vectors_and_reject_changes() {
        let shopify_body = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
        let shopify_sig = "vo+n5h/cLxNKGlgJ0Fd1aDzU0aOaajK8Hs9m0hPqWiQ=";
        assert_eq!(
            verify_body_base64(Some(shopify_sig), shopify_body, b"shpss_secret"),
            Ok(())
        );
        assert_eq!(sign_body_base64(shopify_body, b"shpss_secret"), shopify_sig);
        assert_eq!(
            verify_body_base64(Some(shopify_sig), b"{}", b"shpss_secret"),
            Err(SignatureError::Mismatch)
        );
        let woo_body = br#"{"id":727,"status":"processing"}"#;
        let woo_sig = "M5zIirWLSRhgI1MdKCotxfEOmgXByIXcTgNBWyq4Prs=";
        assert_eq!(
            verify_body_base64(Some(woo_sig), woo_body, b"wc_secret"),
            Ok(())
        );
        assert_eq!(
            verify_body_base64(Some(woo_sig), woo_body, b"other"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_body_base64(None, woo_body, b"wc_secret"),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_body_base64(Some(""), woo_body, b"wc_secret"),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_body_base64(Some("%%%"), woo_body, b"wc_secret"),
            Err(SignatureError::Malformed)
        );
    }
}
