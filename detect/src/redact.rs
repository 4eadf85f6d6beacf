//! Secrets out of findings. Request URIs and command lines carry what people paste into them:
//! `?token=...`, `curl -H "Authorization: Bearer ..."`, JWTs, AWS access keys, `--password=...`.
//! A finding is read by many (a SIEM, a ticket, a chat channel), so each secret is replaced by its
//! kind and a short digest, `[REDACTED:jwt:3f2a9c1e]`: the same secret always reads the same, so
//! two findings can still be told to share one, and no finding holds it. The finding says what was
//! redacted (`additionalInfo.redacted`).
//!
//! Free of I/O like the rest of detect: applied to every detection as the engine hands it out.

use std::sync::OnceLock;

use regex::Regex;
use sha2::{Digest, Sha256};
use vigil_schemas::{Detection, KeyValue, ProcessInfo};

/// A kind of secret: its name and the pattern whose group `secret` is the secret (what comes
/// before it in the match stays).
struct Pattern {
    kind: &'static str,
    regex: Regex,
}

fn patterns() -> &'static [Pattern] {
    static PATTERNS: OnceLock<Vec<Pattern>> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            // A JSON Web Token: three base64url parts, the first two JSON objects (`eyJ`).
            ("jwt", r"(?P<secret>eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*)"),
            // `Authorization: Bearer x`, `Bearer x`, also URL-encoded (`Bearer+x`, `Bearer%20x`).
            (
                "bearer_token",
                r"(?i)(?:bearer|basic)(?:\s|\+|%20)+(?P<secret>[A-Za-z0-9._~/=-]{8,}(?:\+[A-Za-z0-9._~/=-]+)*)",
            ),
            ("aws_access_key", r"\b(?P<secret>(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16})\b"),
            (
                "aws_secret_key",
                r"(?i)aws_secret_access_key(?:\s|%20)*(?:=|:|%3D|%3A)(?:\s|%20)*(?P<secret>[A-Za-z0-9/+=]{40})",
            ),
            // `token=...`, `password=...` in query strings, environments and command lines.
            (
                "credential",
                r#"(?i)(?:^|[?&;\s"'-])(?:access_token|id_token|refresh_token|token|password|passwd|pwd|secret|client_secret|api[_-]?key|apikey)(?:=|%3D)(?P<secret>[^\s&;"'+%]{4,})"#,
            ),
            // `--password hunter2`, `--token=...` flags (not the nouns: "read secret shop/db").
            (
                "credential",
                r#"(?i)--(?:password|passwd|token|secret|client-secret|api-key|apikey)(?:\s+|\+|%20)(?P<secret>[^\s&;"'+%-][^\s&;"'+%]{3,})"#,
            ),
        ]
        .into_iter()
        .filter_map(|(kind, pattern)| {
            Regex::new(pattern).ok().map(|regex| Pattern { kind, regex })
        })
        .collect()
    })
}

fn marker(kind: &str, secret: &str) -> String {
    let digest: String = Sha256::digest(secret.as_bytes())
        .iter()
        .take(4)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("[REDACTED:{kind}:{digest}]")
}

/// `text` with every secret replaced; the kinds found are added to `found`.
pub fn redact(text: &str, found: &mut Vec<&'static str>) -> Option<String> {
    let mut current: Option<String> = None;
    for pattern in patterns() {
        let source = current.as_deref().unwrap_or(text);
        if !pattern.regex.is_match(source) {
            continue;
        }
        let mut output = String::with_capacity(source.len());
        let mut last = 0;
        for captures in pattern.regex.captures_iter(source) {
            let Some(secret) = captures.name("secret") else {
                continue;
            };
            // A marker already in place is not a secret.
            if secret.as_str().starts_with("[REDACTED") {
                continue;
            }
            output.push_str(source.get(last..secret.start()).unwrap_or_default());
            output.push_str(&marker(pattern.kind, secret.as_str()));
            last = secret.end();
        }
        output.push_str(source.get(last..).unwrap_or_default());
        if !found.contains(&pattern.kind) {
            found.push(pattern.kind);
        }
        current = Some(output);
    }
    current
}

fn redact_in_place(text: &mut String, found: &mut Vec<&'static str>) {
    if let Some(redacted) = redact(text, found) {
        *text = redacted;
    }
}

fn redact_option(text: &mut Option<String>, found: &mut Vec<&'static str>) {
    if let Some(text) = text {
        redact_in_place(text, found);
    }
}

fn redact_process(process: &mut ProcessInfo, found: &mut Vec<&'static str>) {
    redact_option(&mut process.arguments, found);
}

/// Redacts every text of a detection a secret can reach, and says what it redacted.
pub fn redact_detection(detection: &mut Detection) {
    let mut found = Vec::new();
    redact_in_place(&mut detection.title, &mut found);
    redact_in_place(&mut detection.description, &mut found);
    for part in &mut detection.aggregation_key {
        redact_in_place(part, &mut found);
    }
    if let Some(call) = &mut detection.api_call {
        redact_in_place(&mut call.request_uri, &mut found);
        redact_option(&mut call.parameters, &mut found);
        redact_option(&mut call.user_agent, &mut found);
    }
    if let Some(runtime) = &mut detection.runtime {
        redact_process(&mut runtime.process, &mut found);
        for ancestor in &mut runtime.lineage {
            redact_process(ancestor, &mut found);
        }
        for pair in &mut runtime.context {
            redact_in_place(&mut pair.value, &mut found);
        }
    }
    for pair in &mut detection.additional_info {
        redact_in_place(&mut pair.value, &mut found);
    }
    if let Some(workload) = &mut detection.workload {
        for container in &mut workload.containers {
            for argument in &mut container.command {
                redact_in_place(argument, &mut found);
            }
        }
    }
    if !found.is_empty() {
        detection.additional_info.push(KeyValue {
            key: "redacted".into(),
            value: found.join(","),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(text: &str) -> (String, Vec<&'static str>) {
        let mut found = Vec::new();
        let out = redact(text, &mut found).unwrap_or_else(|| text.to_owned());
        (out, found)
    }

    #[test]
    fn secrets_are_replaced_by_kind_and_digest() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl";
        for (text, kind, secret) in [
            (format!("curl -H 'Authorization: Bearer {jwt}' https://k8s"), "jwt", jwt.to_owned()),
            ("curl -H \"Authorization: Bearer abcdef0123456789\" x".to_owned(), "bearer_token", "abcdef0123456789".to_owned()),
            ("/api/v1/namespaces/a/pods/p/exec?command=curl&command=-H&command=Authorization%3A+Bearer+s3cr3tT0kenValue".to_owned(), "bearer_token", "s3cr3tT0kenValue".to_owned()),
            ("aws s3 ls --access-key AKIAIOSFODNN7EXAMPLE".to_owned(), "aws_access_key", "AKIAIOSFODNN7EXAMPLE".to_owned()),
            ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(), "aws_secret_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned()),
            ("mysql --password=hunter22 -h db".to_owned(), "credential", "hunter22".to_owned()),
            ("vault login --token s.abcdefgh1234".to_owned(), "credential", "s.abcdefgh1234".to_owned()),
            ("/apis/x?token=abcd1234&watch=true".to_owned(), "credential", "abcd1234".to_owned()),
        ] {
            let (out, found) = redacted(&text);
            assert!(!out.contains(&secret), "{out}");
            assert!(found.contains(&kind), "{text}: {found:?}");
            assert!(out.contains(&format!("[REDACTED:{kind}:")), "{out}");
        }
        // The same secret reads the same.
        assert_eq!(
            redacted("token=abcd1234").0,
            redacted("x token=abcd1234").0.trim_start_matches("x ")
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "kubectl get pods -n shop",
            "/api/v1/namespaces/shop/secrets?limit=500",
            "nginx -g daemon off;",
            "cat /var/run/secrets/kubernetes.io/serviceaccount/token",
            "kworker -o stratum+tcp://pool.supportxmr.com:3333 -k --donate-level 1",
            "bob read secret shop/stripe-api-key from 203.0.113.66",
            "kubectl create secret generic db --from-literal=user=app",
        ] {
            let (out, found) = redacted(text);
            assert_eq!(out, text);
            assert!(found.is_empty(), "{text}: {found:?}");
        }
    }
}
