//! Who may send, and for which cluster: bearer tokens (the API server's webhook kubeconfig,
//! falcosidekick's `Authorization` header) and Firehose access keys, each mapped to a cluster in
//! the credentials file; client certificates checked against a CA by the TLS layer.
//!
//! Only SHA-256 digests of the secrets are held, and a presented secret is compared by digest, so
//! neither the file's secrets nor a caller's end up in memory dumps, logs or error messages.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a credential authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// Firehose's `X-Amz-Firehose-Access-Key`.
    Firehose,
}

/// The credentials file (TOML), a list of `[[credential]]` tables:
///
/// ```toml
/// [[credential]]
/// kind = "bearer"            # or "firehose"
/// cluster = "prod-east"      # the cluster whose events this credential sends
/// token_file = "/var/run/secrets/vigil/prod-east"   # or token = "...", or token_sha256 = "<hex>"
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    credential: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    kind: Kind,
    cluster: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_sha256: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("reading {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Parse { path: String, error: String },
    #[error("{path}: credential {index} ({cluster}): {problem}")]
    Entry {
        path: String,
        index: usize,
        cluster: String,
        problem: String,
    },
}

#[derive(Clone)]
struct Credential {
    kind: Kind,
    digest: [u8; 32],
    cluster: String,
}

/// The credentials, by digest.
#[derive(Clone, Default)]
pub struct Credentials {
    entries: Vec<Credential>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Digests stay out of debug output too.
        f.debug_struct("Credentials")
            .field("entries", &self.entries.len())
            .finish()
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.trim().as_bytes()).into()
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equal digests, compared without an early exit.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl Credentials {
    /// Reads the credentials file; paths in it are relative to it.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| CredentialsError::Read {
            path: shown.clone(),
            error,
        })?;
        Self::from_text(&text, path.parent().unwrap_or(Path::new(".")), &shown)
    }

    fn from_text(text: &str, base: &Path, shown: &str) -> Result<Self, CredentialsError> {
        let file: File = toml::from_str(text).map_err(|error| CredentialsError::Parse {
            path: shown.to_owned(),
            error: error.to_string(),
        })?;
        let mut entries = Vec::new();
        for (index, entry) in file.credential.into_iter().enumerate() {
            let problem = |problem: &str| CredentialsError::Entry {
                path: shown.to_owned(),
                index: index + 1,
                cluster: entry.cluster.clone(),
                problem: problem.to_owned(),
            };
            if entry.cluster.trim().is_empty() {
                return Err(problem("cluster is empty"));
            }
            let digest = match (&entry.token, &entry.token_file, &entry.token_sha256) {
                (Some(token), None, None) if !token.trim().is_empty() => digest(token),
                (None, Some(file), None) => {
                    let token = std::fs::read_to_string(base.join(file)).map_err(|error| {
                        problem(&format!("reading token_file {}: {error}", file.display()))
                    })?;
                    if token.trim().is_empty() {
                        return Err(problem("token_file is empty"));
                    }
                    digest(&token)
                }
                (None, None, Some(hex)) => parse_hex_digest(hex)
                    .ok_or_else(|| problem("token_sha256 is not 64 hexadecimal digits"))?,
                _ => {
                    return Err(problem(
                        "give exactly one of token, token_file and token_sha256 (not empty)",
                    ));
                }
            };
            entries.push(Credential {
                kind: entry.kind,
                digest,
                cluster: entry.cluster,
            });
        }
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cluster a presented secret of `kind` sends for, if it is one of the file's.
    pub fn cluster_of(&self, kind: Kind, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for entry in &self.entries {
            if entry.kind == kind && same(&entry.digest, &presented) && found.is_none() {
                found = Some(entry.cluster.as_str());
            }
        }
        found
    }
}

/// What a request presented.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The TLS layer verified a client certificate against the client CA.
    pub client_certificate: bool,
    pub bearer: Option<&'a str>,
    pub firehose_key: Option<&'a str>,
}

/// Why a request is not let in. The messages never hold the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
}

/// How requests must authenticate.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub credentials: Credentials,
    /// Let requests with no credential in (a gateway on loopback or behind an authenticating
    /// proxy); a credential that is presented is still checked.
    pub allow_anonymous: bool,
}

impl Policy {
    /// The cluster a request's events belong to (`None`: the events say, or no cluster), or why it
    /// is refused. A credential mapped to a cluster may only send for that cluster: a path naming
    /// another is forbidden.
    pub fn authorize(
        &self,
        presented: Presented<'_>,
        path_cluster: Option<&str>,
    ) -> Result<Option<String>, Refusal> {
        let credential_cluster = if let Some(key) = presented.firehose_key {
            Some(
                self.credentials
                    .cluster_of(Kind::Firehose, key)
                    .ok_or(Refusal::Unauthorized(
                        "the Firehose access key is not known",
                    ))?,
            )
        } else if let Some(token) = presented.bearer {
            Some(
                self.credentials
                    .cluster_of(Kind::Bearer, token)
                    .ok_or(Refusal::Unauthorized("the bearer token is not known"))?,
            )
        } else if presented.client_certificate || self.allow_anonymous {
            None
        } else {
            return Err(Refusal::Unauthorized(
                "no credential: send a bearer token, a Firehose access key or a client certificate",
            ));
        };
        match (credential_cluster, path_cluster) {
            (Some(granted), Some(asked)) if granted != asked => Err(Refusal::Forbidden(format!(
                "this credential sends for cluster {granted:?}, not {asked:?}"
            ))),
            (Some(granted), _) => Ok(Some(granted.to_owned())),
            (None, asked) => Ok(asked.map(str::to_owned)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        let hex: String = digest("hashed-secret")
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let text = format!(
            r#"
            [[credential]]
            kind = "bearer"
            cluster = "prod"
            token = "prod-token"

            [[credential]]
            kind = "firehose"
            cluster = "prod"
            token = "firehose-key"

            [[credential]]
            kind = "bearer"
            cluster = "dev"
            token_sha256 = "{hex}"
            "#
        );
        Credentials::from_text(&text, Path::new("."), "test.toml").unwrap()
    }

    #[test]
    fn tokens_and_keys_map_to_their_cluster_by_kind() {
        let credentials = credentials();
        assert_eq!(
            credentials.cluster_of(Kind::Bearer, "prod-token"),
            Some("prod")
        );
        assert_eq!(
            credentials.cluster_of(Kind::Bearer, "hashed-secret"),
            Some("dev")
        );
        assert_eq!(
            credentials.cluster_of(Kind::Firehose, "firehose-key"),
            Some("prod")
        );
        assert_eq!(credentials.cluster_of(Kind::Firehose, "prod-token"), None);
        assert_eq!(credentials.cluster_of(Kind::Bearer, "guess"), None);
    }

    #[test]
    fn a_credential_may_send_only_for_its_cluster() {
        let policy = Policy {
            credentials: credentials(),
            allow_anonymous: false,
        };
        let bearer = |token| Presented {
            bearer: Some(token),
            ..Presented::default()
        };
        assert_eq!(
            policy.authorize(bearer("prod-token"), None),
            Ok(Some("prod".to_owned()))
        );
        assert_eq!(
            policy.authorize(bearer("prod-token"), Some("prod")),
            Ok(Some("prod".to_owned()))
        );
        assert!(matches!(
            policy.authorize(bearer("prod-token"), Some("dev")),
            Err(Refusal::Forbidden(_))
        ));
        let refused = policy.authorize(bearer("wrong-token"), None).unwrap_err();
        assert!(matches!(refused, Refusal::Unauthorized(_)));
        assert!(!refused.to_string().contains("wrong-token"));
        assert!(matches!(
            policy.authorize(Presented::default(), Some("prod")),
            Err(Refusal::Unauthorized(_))
        ));
        let certificate = Presented {
            client_certificate: true,
            ..Presented::default()
        };
        assert_eq!(
            policy.authorize(certificate, Some("edge")),
            Ok(Some("edge".to_owned()))
        );
    }

    #[test]
    fn anonymous_requests_need_the_policy_to_allow_them_and_credentials_are_still_checked() {
        let policy = Policy {
            credentials: credentials(),
            allow_anonymous: true,
        };
        assert_eq!(policy.authorize(Presented::default(), None), Ok(None));
        let bad = Presented {
            firehose_key: Some("nope"),
            ..Presented::default()
        };
        assert!(policy.authorize(bad, None).is_err());
    }

    #[test]
    fn a_bad_credentials_file_says_which_entry_and_why() {
        for (text, needle) in [
            (
                "[[credential]]\nkind = \"bearer\"\ncluster = \"a\"\n",
                "exactly one",
            ),
            (
                "[[credential]]\nkind = \"bearer\"\ncluster = \"a\"\ntoken_sha256 = \"xyz\"\n",
                "64 hexadecimal",
            ),
            (
                "[[credential]]\nkind = \"basic\"\ncluster = \"a\"\ntoken = \"t\"\n",
                "basic",
            ),
            (
                "[[credential]]\nkind = \"bearer\"\ncluster = \"\"\ntoken = \"t\"\n",
                "cluster is empty",
            ),
        ] {
            let error = Credentials::from_text(text, Path::new("."), "c.toml")
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{error}");
            assert!(error.starts_with("c.toml"), "{error}");
        }
    }
}
