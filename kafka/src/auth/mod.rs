//! Kafka authentication librdkafka cannot do by itself: Amazon MSK's IAM access control, as
//! SASL/OAUTHBEARER tokens signed with the process's AWS credentials (`--kafka-auth aws-msk-iam`).
//! Everything else (TLS, client certificates, SASL/SCRAM, PLAIN, OAUTHBEARER with OIDC) is
//! librdkafka's own, set with `-X`.
//!
//! The credentials come from AWS's default chain, as every AWS SDK reads it: environment,
//! profiles, IRSA (web identity), EKS Pod Identity and ECS container credentials, EC2 instance
//! metadata. They are fetched once before the first client is made (no credentials: the process
//! does not start) and refreshed in the background before they expire. A token is signed from the
//! cached credentials when librdkafka asks for one, so the ask never waits on the network.

pub mod msk_iam;

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls;
use clap::ValueEnum;
use rdkafka::client::{Client, ClientContext, OAuthToken};

/// How the Kafka clients authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum KafkaAuth {
    /// As the `-X` settings say (none, TLS, SASL/SCRAM, PLAIN, OAUTHBEARER with OIDC).
    #[default]
    Librdkafka,
    /// Amazon MSK IAM: SASL/OAUTHBEARER over TLS with tokens signed by the AWS credentials.
    AwsMskIam,
}

/// Why authentication could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "MSK IAM needs the cluster's region: pass --aws-region (VIGIL_AWS_REGION), set AWS_REGION, or give MSK broker addresses"
    )]
    NoRegion,
    #[error("MSK IAM: no AWS credentials provider could be configured")]
    NoProvider,
    #[error(
        "MSK IAM: no AWS credentials (environment, profile, IRSA web identity, Pod Identity or instance metadata): {0}"
    )]
    Credentials(String),
    #[error(transparent)]
    Sign(#[from] msk_iam::SignError),
}

/// The MSK IAM token source of one process: shared by every Kafka client it makes.
#[derive(Clone)]
pub struct MskIam {
    inner: Arc<Inner>,
}

struct Inner {
    region: String,
    user_agent: String,
    credentials: RwLock<Credentials>,
}

impl std::fmt::Debug for MskIam {
    // Credentials are never printed; the access key id says which identity is used.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let access_key = self
            .inner
            .credentials
            .read()
            .map(|credentials| credentials.access_key_id().to_owned())
            .unwrap_or_default();
        f.debug_struct("MskIam")
            .field("region", &self.inner.region)
            .field("access_key_id", &access_key)
            .finish_non_exhaustive()
    }
}

/// How often credentials without an expiry (static keys in the environment or a profile) are read
/// again, so that a rotated profile file is picked up.
const STATIC_REREAD: Duration = Duration::from_secs(300);
/// How long after a failed refresh the next try comes.
const RETRY_AFTER: Duration = Duration::from_secs(5);

impl MskIam {
    /// Resolves the region (`region`, else the brokers' MSK address, else AWS's region chain),
    /// fetches the first credentials and starts refreshing them. Must run inside the runtime.
    pub async fn start(region: Option<&str>, brokers: &str) -> Result<Self, AuthError> {
        let region = match region
            .map(str::to_owned)
            .or_else(|| msk_iam::region_of_brokers(brokers))
        {
            Some(region) => region,
            None => RegionProviderChain::default_provider()
                .region()
                .await
                .map(|region| region.as_ref().to_owned())
                .ok_or(AuthError::NoRegion)?,
        };
        // rustls with ring, as the gateway: no second TLS stack, no cmake.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(aws_config::Region::new(region.clone()))
            .load()
            .await;
        let provider = config.credentials_provider().ok_or(AuthError::NoProvider)?;
        let credentials = fetch(&provider).await?;
        tracing::info!(
            region,
            access_key_id = credentials.access_key_id(),
            expires = credentials.expiry().is_some(),
            "MSK IAM: signing Kafka authentication tokens with these AWS credentials"
        );
        let iam = Self {
            inner: Arc::new(Inner {
                region,
                user_agent: format!("vigil/{}", env!("CARGO_PKG_VERSION")),
                credentials: RwLock::new(credentials),
            }),
        };
        tokio::spawn(refresh(Arc::downgrade(&iam.inner), provider));
        Ok(iam)
    }

    /// A token signed now with the current credentials.
    pub fn token(&self) -> Result<OAuthToken, AuthError> {
        let credentials = self
            .inner
            .credentials
            .read()
            .map_err(|_| AuthError::Credentials("credentials lock poisoned".into()))?
            .clone();
        let signed = msk_iam::sign_token(
            &credentials,
            &self.inner.region,
            SystemTime::now(),
            &self.inner.user_agent,
        )?;
        Ok(OAuthToken {
            token: signed.token,
            principal_name: credentials.access_key_id().to_owned(),
            lifetime_ms: signed.expires_at_ms,
        })
    }

    /// Hands a first token to a client just made. librdkafka asks for tokens through an event
    /// of the client's main queue, which the contexts below answer when the client is polled; an
    /// admin client never polls that queue (rust-rdkafka 0.39), and a consumer asked for metadata
    /// before its first poll would wait. Later tokens are asked for through the context, before
    /// this one expires.
    pub fn prime<C: ClientContext>(&self, client: &Client<C>) -> Result<(), String> {
        let token = self.token().map_err(|error| error.to_string())?;
        set_token(client, &token)
    }
}

async fn fetch(provider: &SharedCredentialsProvider) -> Result<Credentials, AuthError> {
    provider.provide_credentials().await.map_err(|error| {
        // The provider chain's error says only "failed"; the reason is down its sources.
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        AuthError::Credentials(text)
    })
}

/// When to fetch credentials again: well before they expire (five minutes, or half the time left
/// when less than ten remain), at least a second from now.
fn refresh_delay(expiry: Option<SystemTime>, now: SystemTime) -> Duration {
    let Some(expiry) = expiry else {
        return STATIC_REREAD;
    };
    let left = expiry.duration_since(now).unwrap_or_default();
    let delay = if left > Duration::from_secs(600) {
        left - Duration::from_secs(300)
    } else {
        left / 2
    };
    delay.max(Duration::from_secs(1))
}

/// Refreshes the credentials until the last handle is dropped.
async fn refresh(inner: Weak<Inner>, provider: SharedCredentialsProvider) {
    let mut delay = match inner.upgrade() {
        Some(inner) => {
            let expiry = inner.credentials.read().ok().and_then(|c| c.expiry());
            refresh_delay(expiry, SystemTime::now())
        }
        None => return,
    };
    loop {
        tokio::time::sleep(delay).await;
        let fetched = fetch(&provider).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        delay = match fetched {
            Ok(credentials) => {
                let expiry = credentials.expiry();
                if let Ok(mut current) = inner.credentials.write() {
                    if current.access_key_id() != credentials.access_key_id() {
                        tracing::info!(
                            access_key_id = credentials.access_key_id(),
                            "MSK IAM: AWS credentials rotated"
                        );
                    }
                    *current = credentials;
                }
                refresh_delay(expiry, SystemTime::now())
            }
            Err(error) => {
                tracing::warn!(%error, "MSK IAM: refreshing the AWS credentials failed; retrying");
                RETRY_AFTER
            }
        };
    }
}

/// The answer of every Vigil client context to librdkafka's ask for an OAUTHBEARER token.
pub fn oauth_token(iam: Option<&MskIam>) -> Result<OAuthToken, Box<dyn std::error::Error>> {
    match iam {
        Some(iam) => Ok(iam.token()?),
        // librdkafka's OIDC refresher never asks the context (it runs on its own thread).
        None => Err("no OAUTHBEARER token source: use --kafka-auth aws-msk-iam for MSK IAM, or librdkafka's sasl.oauthbearer.method=oidc settings".into()),
    }
}

/// A context for the clients with no callbacks of their own (the admin client, the state
/// readers): tokens only.
#[derive(Debug, Clone, Default)]
pub struct AuthContext {
    pub iam: Option<MskIam>,
}

impl ClientContext for AuthContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        oauth_token(self.iam.as_ref())
    }
}

impl rdkafka::consumer::ConsumerContext for AuthContext {}

/// librdkafka's `rd_kafka_oauthbearer_set_token`, which rust-rdkafka calls only from inside its
/// event handling.
#[allow(unsafe_code)]
fn set_token<C: ClientContext>(client: &Client<C>, token: &OAuthToken) -> Result<(), String> {
    use std::ffi::CString;
    let value = CString::new(token.token.as_str()).map_err(|error| error.to_string())?;
    let principal =
        CString::new(token.principal_name.as_str()).map_err(|error| error.to_string())?;
    let mut message = [0 as std::ffi::c_char; 512];
    // SAFETY: the client pointer is live for the borrow of `client`; the strings are
    // NUL-terminated and outlive the call, which copies them; no extensions are passed (a null
    // array of size 0); the error buffer's size is the one given. librdkafka documents the call
    // as thread-safe.
    let code = unsafe {
        rdkafka::bindings::rd_kafka_oauthbearer_set_token(
            client.native_ptr(),
            value.as_ptr(),
            token.lifetime_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            message.as_mut_ptr(),
            message.len(),
        )
    };
    if code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(());
    }
    // SAFETY: librdkafka wrote a NUL-terminated message into the buffer (zeroed beforehand).
    let text = unsafe { std::ffi::CStr::from_ptr(message.as_ptr()) };
    Err(text.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_refreshed_well_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(refresh_delay(None, now), STATIC_REREAD);
        assert_eq!(
            refresh_delay(Some(now + Duration::from_secs(3600)), now),
            Duration::from_secs(3300)
        );
        assert_eq!(
            refresh_delay(Some(now + Duration::from_secs(300)), now),
            Duration::from_secs(150)
        );
        assert_eq!(
            refresh_delay(Some(now - Duration::from_secs(10)), now),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn without_a_token_source_the_context_says_how_to_get_one() {
        let error = oauth_token(None).err().map(|error| error.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|text| text.contains("--kafka-auth aws-msk-iam")),
            "{error:?}"
        );
    }
}
