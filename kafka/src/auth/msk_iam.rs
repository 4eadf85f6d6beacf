//! The MSK IAM token: what AWS's signer libraries (aws-msk-iam-sasl-signer for Go, Python, Java
//! and JavaScript) send as the SASL/OAUTHBEARER token. A SigV4 presigned
//! `GET https://kafka.<region>.amazonaws.com/?Action=kafka-cluster:Connect`, valid 15 minutes, with
//! a `User-Agent` parameter appended after signing, the whole URL base64url-encoded without
//! padding. Pure: the credentials and the signing time are arguments, so it can be tested against
//! the reference signer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The IAM action a token asks for; MSK's policies name it.
const ACTION: &str = "kafka-cluster:Connect";
/// The SigV4 service name MSK verifies the signature against.
const SIGNING_NAME: &str = "kafka-cluster";
/// How long a token is valid: the reference signers' fixed 900 s.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// SigV4's unreserved characters (RFC 3986), left as they are; everything else is encoded.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A signed token and the moment it stops being accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedToken {
    /// base64url (no padding) of the presigned URL.
    pub token: String,
    /// Milliseconds since the Unix epoch: the signing time plus the lifetime, or the credentials'
    /// own expiry when that comes first (a token signed with expired credentials is refused).
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for SignedToken {
    // The token carries a session token and a signature: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedToken")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the MSK IAM token: {0}")]
pub struct SignError(String);

/// Signs the token for `region` with `credentials` at `at`.
pub fn sign_token(
    credentials: &Credentials,
    region: &str,
    at: SystemTime,
    user_agent: &str,
) -> Result<SignedToken, SignError> {
    let host = format!("kafka.{region}.amazonaws.com");
    let base = format!(
        "https://{host}/?Action={}",
        utf8_percent_encode(ACTION, SIGV4_ENCODE)
    );
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(at)
        .settings(settings)
        .build()
        .map_err(|error| SignError(error.to_string()))?
        .into();
    // Only `host` is signed, as the reference signers do; the body is empty.
    let host_header = [("host", host.as_str())];
    let request = SignableRequest::new(
        "GET",
        &base,
        host_header.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|error| SignError(error.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|error| SignError(error.to_string()))?
        .into_parts();
    let mut url = base;
    for (name, value) in instructions.params() {
        url.push('&');
        url.push_str(name);
        url.push('=');
        url.extend(utf8_percent_encode(value, SIGV4_ENCODE));
    }
    // Appended after signing, as the reference signers do: MSK leaves it out of the signature.
    url.push_str("&User-Agent=");
    url.extend(utf8_percent_encode(user_agent, SIGV4_ENCODE));
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_bytes());
    let signed_until = at + TOKEN_LIFETIME;
    let until = match credentials.expiry() {
        Some(expiry) if expiry < signed_until => expiry,
        _ => signed_until,
    };
    let expires_at_ms = until.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    });
    Ok(SignedToken {
        token,
        expires_at_ms,
    })
}

/// The region of an MSK bootstrap address: provisioned brokers
/// (`b-1.name.abc123.c2.kafka.us-east-1.amazonaws.com:9098`), serverless
/// (`boot-abc.c1.kafka-serverless.eu-west-1.amazonaws.com:9098`), and the China and GovCloud
/// partitions' domains. `None` for anything else: the region then comes from `--aws-region` or
/// AWS's own region chain.
pub fn region_of_brokers(brokers: &str) -> Option<String> {
    brokers.split(',').find_map(|broker| {
        let host = broker
            .trim()
            .rsplit_once(':')
            .map_or(broker.trim(), |(host, _)| host);
        let labels: Vec<&str> = host.split('.').collect();
        let service = labels
            .iter()
            .position(|label| *label == "kafka" || *label == "kafka-serverless")?;
        let region = labels.get(service + 1)?;
        let rest = labels.get(service + 2..)?.join(".");
        let aws_domain = matches!(rest.as_str(), "amazonaws.com" | "amazonaws.com.cn");
        let looks_like_region = region.split('-').count() >= 3
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        (aws_domain && looks_like_region).then(|| (*region).to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(session_token: Option<&str>, expiry: Option<SystemTime>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            expiry,
            "test",
        )
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn decoded(token: &SignedToken) -> String {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token.token)
            .expect("base64url without padding");
        String::from_utf8(bytes).expect("a URL")
    }

    fn parameter<'u>(url: &'u str, name: &str) -> Option<&'u str> {
        url.split_once('?')?
            .1
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }

    /// The same credentials and time give the same token; a different secret, region or second
    /// gives another signature. What MSK checks is the signature, so the test pins it: computed by
    /// AWS's own Python signer (aws-msk-iam-sasl-signer-python 1.0.2 over botocore) for these
    /// credentials at 2026-12-07T12:00:00Z; `scripts/test-msk-iam.sh` compares every parameter
    /// against that signer live.
    #[test]
    fn a_token_is_a_presigned_kafka_cluster_connect_url() {
        let token = sign_token(
            &credentials(None, None),
            "us-east-1",
            at(1_796_644_800),
            "vigil/test",
        )
        .expect("signed");
        let url = decoded(&token);
        assert!(
            url.starts_with(
                "https://kafka.us-east-1.amazonaws.com/?Action=kafka-cluster%3AConnect&"
            ),
            "{url}"
        );
        assert_eq!(parameter(&url, "X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(
            parameter(&url, "X-Amz-Credential"),
            Some("AKIDEXAMPLE%2F20261207%2Fus-east-1%2Fkafka-cluster%2Faws4_request")
        );
        assert_eq!(parameter(&url, "X-Amz-Date"), Some("20261207T120000Z"));
        assert_eq!(parameter(&url, "X-Amz-Expires"), Some("900"));
        assert_eq!(parameter(&url, "X-Amz-SignedHeaders"), Some("host"));
        assert_eq!(parameter(&url, "User-Agent"), Some("vigil%2Ftest"));
        assert_eq!(parameter(&url, "X-Amz-Security-Token"), None);
        assert_eq!(
            parameter(&url, "X-Amz-Signature"),
            Some(EXPECTED_SIGNATURE),
            "{url}"
        );
        assert_eq!(token.expires_at_ms, (1_796_644_800 + 900) * 1000);
        assert!(
            !token.token.contains('=') && !token.token.contains('+') && !token.token.contains('/')
        );

        let again = sign_token(
            &credentials(None, None),
            "us-east-1",
            at(1_796_644_800),
            "vigil/test",
        )
        .expect("signed");
        assert_eq!(again, token);
        let later = sign_token(
            &credentials(None, None),
            "us-east-1",
            at(1_796_644_801),
            "vigil/test",
        )
        .expect("signed");
        assert_ne!(
            parameter(&decoded(&later), "X-Amz-Signature"),
            Some(EXPECTED_SIGNATURE)
        );
        let elsewhere = sign_token(
            &credentials(None, None),
            "eu-west-1",
            at(1_796_644_800),
            "vigil/test",
        )
        .expect("signed");
        assert_ne!(
            parameter(&decoded(&elsewhere), "X-Amz-Signature"),
            Some(EXPECTED_SIGNATURE)
        );
        let other_secret = Credentials::new("AKIDEXAMPLE", "another", None, None, "test");
        let forged = sign_token(&other_secret, "us-east-1", at(1_796_644_800), "vigil/test")
            .expect("signed");
        assert_ne!(
            parameter(&decoded(&forged), "X-Amz-Signature"),
            Some(EXPECTED_SIGNATURE)
        );
    }

    const EXPECTED_SIGNATURE: &str =
        "300394beddc0177e63931651de0d750bedf4ce3d6c26a96a13e25b8437a361c4";

    /// Temporary credentials (IRSA, Pod Identity) carry a session token, which is signed, encoded
    /// (it holds `/`, `+` and `=`), and bounds the token's life when it expires first.
    #[test]
    fn a_session_token_is_signed_and_its_expiry_bounds_the_token() {
        let expiry = at(1_796_644_800 + 300);
        let token = sign_token(
            &credentials(Some("FwoGZXIvYXdzE+session/token=="), Some(expiry)),
            "us-east-1",
            at(1_796_644_800),
            "vigil/test",
        )
        .expect("signed");
        let url = decoded(&token);
        assert_eq!(
            parameter(&url, "X-Amz-Security-Token"),
            Some("FwoGZXIvYXdzE%2Bsession%2Ftoken%3D%3D")
        );
        assert_eq!(token.expires_at_ms, (1_796_644_800 + 300) * 1000);
    }

    #[test]
    fn the_region_comes_from_an_msk_bootstrap_address() {
        for (brokers, region) in [
            (
                "b-1.vigil.abc123.c2.kafka.us-east-1.amazonaws.com:9098",
                Some("us-east-1"),
            ),
            (
                "b-2.vigil.abc123.c2.kafka.eu-central-1.amazonaws.com:9098,b-1.vigil.abc123.c2.kafka.eu-central-1.amazonaws.com:9098",
                Some("eu-central-1"),
            ),
            (
                "boot-abcd.c1.kafka-serverless.ap-southeast-2.amazonaws.com:9098",
                Some("ap-southeast-2"),
            ),
            (
                "b-1.vigil.x.c3.kafka.cn-north-1.amazonaws.com.cn:9098",
                Some("cn-north-1"),
            ),
            (
                "b-1.vigil.x.c3.kafka.us-gov-west-1.amazonaws.com:9098",
                Some("us-gov-west-1"),
            ),
            ("127.0.0.1:9092", None),
            ("kafka.internal.example.com:9092", None),
            ("kafka.us-east-1.example.com:9092", None),
            ("kafka:9092", None),
            ("", None),
        ] {
            assert_eq!(region_of_brokers(brokers).as_deref(), region, "{brokers}");
        }
    }
}
