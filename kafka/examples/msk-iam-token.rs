//! Signs MSK IAM tokens for the cases of `scripts/msk-iam/cases.json` (credentials, region, and
//! the instant to sign at), one JSON line each, for `scripts/test-msk-iam.sh` to check against
//! AWS's own signer.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials;
use vigil_kafka::auth::msk_iam::sign_token;

#[derive(serde::Deserialize)]
struct Case {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    region: String,
    at: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: msk-iam-token CASES.json")?;
    let cases: Vec<Case> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut out = std::io::stdout().lock();
    for case in cases {
        let credentials = Credentials::new(
            case.access_key_id,
            case.secret_access_key,
            case.session_token,
            None,
            "cases",
        );
        let signed = sign_token(
            &credentials,
            &case.region,
            UNIX_EPOCH + Duration::from_secs(case.at),
            "vigil/test",
        )?;
        writeln!(
            out,
            "{}",
            serde_json::json!({"token": signed.token, "expires_at_ms": signed.expires_at_ms})
        )?;
    }
    Ok(())
}
