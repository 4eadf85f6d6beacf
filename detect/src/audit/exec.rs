//! What a command run through `pods/exec` does: read credentials (service-account and cloud
//! tokens, credential files, the environment) or copy files out of the pod (`kubectl cp` is
//! `tar cf -` through exec). The command is the one ingest read from the URI or the body
//! (`AuditEvent.exec_command`); a shell's `-c` script is split into its simple commands.
//! And any command run in a kube-system pod.

use vigil_schemas::{AuditEvent, Detection, EnrichedEvent, KeyValue};

use crate::Detector;
use crate::detection::{Verdict, detection, severity};
use crate::facts::{base_name, is_system_principal, object_name, succeeded};

/// **`Execution:Kubernetes/ExecInKubeSystemPod`** — Medium.
/// Trigger: a command run through `pods/exec` in a pod of `kube-system`, allowed by the API server.
/// Key: principal, pod.
#[derive(Debug, Default)]
pub struct ExecInKubeSystemPod;

impl Detector for ExecInKubeSystemPod {
    fn name(&self) -> &'static str {
        "exec_in_kube_system_pod"
    }
    fn source(&self) -> crate::Source {
        crate::Source::Audit
    }
    fn inspect_audit(
        &mut self,
        event: &AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        let Some(object) = event.object_ref.as_ref() else {
            return;
        };
        if object.subresource.as_deref() != Some("exec")
            || object.namespace.as_deref() != Some("kube-system")
            || !matches!(event.verb.as_str(), "create" | "get")
            || !succeeded(event)
        {
            return;
        }
        let pod = object_name(event);
        let command = &event.exec_command;
        let mut found = detection(
            enriched,
            event,
            self.name(),
            Verdict {
                finding_type: "Execution:Kubernetes/ExecInKubeSystemPod".into(),
                severity: severity::MEDIUM,
                title: format!("Command executed inside kube-system pod {pod}."),
                description: format!(
                    "{} ran a command ({}) inside pod {pod} of the kube-system namespace in cluster {}. System pods hold powerful credentials; exec into them is rarely routine.",
                    event.user.username,
                    if command.is_empty() {
                        "not logged".to_owned()
                    } else {
                        command.join(" ")
                    },
                    enriched.cluster.name
                ),
                aggregation_key: vec![event.user.username.clone(), pod],
            },
        );
        if !command.is_empty() {
            found.additional_info.push(KeyValue {
                key: "command".into(),
                value: command.join(" "),
            });
        }
        out.push(found);
    }
}

/// Where credentials live in a pod or on a node, and the addresses that hand them out. A word of
/// the command containing one of these reads a credential.
const CREDENTIAL_MARKERS: [(&str, &str); 24] = [
    (
        "/var/run/secrets/kubernetes.io/serviceaccount",
        "the service-account token",
    ),
    (
        "/run/secrets/kubernetes.io/serviceaccount",
        "the service-account token",
    ),
    (
        "/var/run/secrets/eks.amazonaws.com/serviceaccount",
        "the IRSA web identity token",
    ),
    (
        "/run/secrets/eks.amazonaws.com/serviceaccount",
        "the IRSA web identity token",
    ),
    (
        "/var/run/secrets/pods.eks.amazonaws.com",
        "the EKS Pod Identity token",
    ),
    (
        "/run/secrets/pods.eks.amazonaws.com",
        "the EKS Pod Identity token",
    ),
    (
        "/var/run/secrets/azure/tokens",
        "the Azure workload identity token",
    ),
    (
        "/var/run/secrets/tokens/",
        "a projected service-account token",
    ),
    ("aws_web_identity_token_file", "the IRSA web identity token"),
    (
        "aws_container_credentials_full_uri",
        "the container credentials endpoint",
    ),
    (
        "aws_container_authorization_token",
        "the container credentials endpoint",
    ),
    (".aws/credentials", "AWS credentials"),
    (".kube/config", "a kubeconfig"),
    ("/etc/kubernetes/admin.conf", "the cluster admin kubeconfig"),
    ("/etc/kubernetes/kubelet.conf", "the kubelet's kubeconfig"),
    ("/etc/kubernetes/pki", "the cluster's keys"),
    ("/var/lib/kubelet/kubeconfig", "the kubelet's kubeconfig"),
    ("/var/lib/kubelet/pki", "the kubelet's keys"),
    (".config/gcloud", "Google Cloud credentials"),
    (
        "application_default_credentials.json",
        "Google Cloud credentials",
    ),
    (".azure/", "Azure credentials"),
    (".docker/config.json", "registry credentials"),
    ("/etc/shadow", "password hashes"),
    ("/environ", "a process's environment"),
];

/// Instance and pod credential endpoints: the EC2 metadata service (v4 and v6), the ECS and EKS
/// Pod Identity agents, Google's and Azure's metadata servers.
const CREDENTIAL_ENDPOINTS: [&str; 6] = [
    "169.254.169.254",
    "fd00:ec2::254",
    "169.254.170.2",
    "169.254.170.23",
    "metadata.google.internal",
    "metadata.azure.com",
];

/// The command's simple commands, as words: `sh -c "cat a; env | grep AWS"` is
/// `[[sh, -c], [cat, a], [env], [grep, AWS]]`. Quotes are dropped, not interpreted.
pub fn simple_commands(command: &[String]) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for part in command {
        let mut word = String::new();
        let mut chars = part.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                ';' | '|' | '&' | '\n' | '`' | '(' | ')' => {
                    if !word.is_empty() {
                        current.push(std::mem::take(&mut word));
                    }
                    if !current.is_empty() {
                        commands.push(std::mem::take(&mut current));
                    }
                }
                '$' if chars.peek() == Some(&'(') => {}
                '"' | '\'' => {}
                c if c.is_whitespace() => {
                    if !word.is_empty() {
                        current.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            current.push(word);
        }
        // A shell's `-c` takes the next argument as a script of its own.
        if part == "-c" && !current.is_empty() {
            commands.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        commands.push(current);
    }
    commands
}

/// Reads the environment as a whole: `env` alone (not `env VAR=x program`), `printenv`,
/// `export` or `declare -x`/`-p` alone.
fn dumps_environment(words: &[String]) -> bool {
    let Some((first, rest)) = words.split_first() else {
        return false;
    };
    let options_only = rest.iter().all(|word| word.starts_with('-'));
    match base_name(first) {
        "env" => options_only,
        "printenv" => true,
        "export" | "declare" | "typeset" => {
            options_only
                && (rest.is_empty() || rest.iter().any(|w| w.contains('x') || w.contains('p')))
        }
        _ => false,
    }
}

/// What credential the command reads, in words, if any.
pub fn credential_read(command: &[String]) -> Option<&'static str> {
    let commands = simple_commands(command);
    for words in &commands {
        for word in words {
            let lower = word.to_ascii_lowercase();
            if let Some((_, what)) = CREDENTIAL_MARKERS
                .iter()
                .find(|(marker, _)| lower.contains(marker))
            {
                if *what == "a process's environment" && !lower.contains("/proc/") {
                    continue;
                }
                return Some(what);
            }
            if CREDENTIAL_ENDPOINTS
                .iter()
                .any(|endpoint| lower.contains(endpoint))
            {
                return Some("credentials from a metadata endpoint");
            }
        }
        if dumps_environment(words) {
            return Some("the environment (where tokens and keys are often passed)");
        }
    }
    None
}

/// The command copies files out: `tar` creating an archive on its standard output, as `kubectl cp
/// POD:PATH LOCAL` runs it.
pub fn copies_files_out(command: &[String]) -> bool {
    simple_commands(command).iter().any(|words| {
        let Some((first, rest)) = words.split_first() else {
            return false;
        };
        if base_name(first) != "tar" {
            return false;
        }
        // The first argument may be a bundle without a dash (`tar cf - x`), later ones have one.
        let bundles: Vec<&str> = rest
            .iter()
            .enumerate()
            .filter(|(index, word)| {
                (*index == 0 && !word.starts_with('-'))
                    || (word.starts_with('-') && !word.starts_with("--"))
            })
            .map(|(_, word)| word.trim_start_matches('-'))
            .collect();
        let creates = bundles.iter().any(|bundle| bundle.contains('c'))
            || rest.iter().any(|word| word == "--create");
        let names_file = bundles.iter().any(|bundle| bundle.contains('f'))
            || rest.iter().any(|word| word.starts_with("--file"));
        let to_stdout = rest.iter().any(|word| word == "-" || word == "--file=-") || !names_file;
        creates && to_stdout
    })
}

fn exec_target(event: &AuditEvent) -> bool {
    event
        .object_ref
        .as_ref()
        .is_some_and(|object| object.subresource.as_deref() == Some("exec"))
        && matches!(event.verb.as_str(), "create" | "get")
        && succeeded(event)
        && !is_system_principal(event)
        && !event.exec_command.is_empty()
}

fn in_kube_system(event: &AuditEvent) -> bool {
    event
        .object_ref
        .as_ref()
        .and_then(|object| object.namespace.as_deref())
        == Some("kube-system")
}

fn command_info(event: &AuditEvent) -> KeyValue {
    KeyValue {
        key: "command".into(),
        value: event.exec_command.join(" "),
    }
}

/// **`CredentialAccess:Kubernetes/CredentialsReadThroughExec`** — Medium (High in `kube-system`).
/// Trigger: a command run through `pods/exec` that reads a service-account token, an EKS IRSA or
/// Pod Identity token (or their variables), a cloud credential file, a kubeconfig or the node's
/// keys, asks a metadata endpoint, or dumps the environment (`env`, `printenv`,
/// `cat /proc/1/environ`). Raised beside `ExecInPod`: the exec is one fact, the theft another.
/// Key: principal, pod.
#[derive(Debug, Default)]
pub struct CredentialsReadThroughExec;

impl Detector for CredentialsReadThroughExec {
    fn name(&self) -> &'static str {
        "credentials_read_through_exec"
    }
    fn source(&self) -> crate::Source {
        crate::Source::Audit
    }
    fn inspect_audit(
        &mut self,
        event: &AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        if !exec_target(event) {
            return;
        }
        let Some(what) = credential_read(&event.exec_command) else {
            return;
        };
        let pod = object_name(event);
        let verdict = Verdict {
            finding_type: "CredentialAccess:Kubernetes/CredentialsReadThroughExec".into(),
            severity: if in_kube_system(event) {
                severity::HIGH
            } else {
                severity::MEDIUM
            },
            title: format!("Credentials read through exec in pod {pod}."),
            description: format!(
                "{} ran `{}` in pod {pod} of cluster {}, which reads {what}. Whoever holds it can act as the pod's identity from anywhere.",
                event.user.username,
                event.exec_command.join(" "),
                enriched.cluster.name
            ),
            aggregation_key: vec![event.user.username.clone(), pod],
        };
        let mut found = detection(enriched, event, self.name(), verdict);
        found.additional_info.push(command_info(event));
        out.push(found);
    }
}

/// **`Exfiltration:Kubernetes/FilesCopiedFromPod`** — Low (Medium in `kube-system`).
/// Trigger: a command run through `pods/exec` that writes a tar archive to its output, which is
/// how `kubectl cp POD:PATH LOCAL` copies files out of a container.
/// Key: principal, pod.
#[derive(Debug, Default)]
pub struct FilesCopiedFromPod;

impl Detector for FilesCopiedFromPod {
    fn name(&self) -> &'static str {
        "files_copied_from_pod"
    }
    fn source(&self) -> crate::Source {
        crate::Source::Audit
    }
    fn inspect_audit(
        &mut self,
        event: &AuditEvent,
        enriched: &EnrichedEvent,
        out: &mut Vec<Detection>,
    ) {
        if !exec_target(event) || !copies_files_out(&event.exec_command) {
            return;
        }
        let pod = object_name(event);
        let verdict = Verdict {
            finding_type: "Exfiltration:Kubernetes/FilesCopiedFromPod".into(),
            severity: if in_kube_system(event) {
                severity::MEDIUM
            } else {
                severity::LOW
            },
            title: format!("Files copied out of pod {pod}."),
            description: format!(
                "{} copied files out of pod {pod} of cluster {} (`{}`, as kubectl cp does).",
                event.user.username,
                enriched.cluster.name,
                event.exec_command.join(" ")
            ),
            aggregation_key: vec![event.user.username.clone(), pod],
        };
        let mut found = detection(enriched, event, self.name(), verdict);
        found.additional_info.push(command_info(event));
        out.push(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| (*part).to_owned()).collect()
    }

    #[test]
    fn scripts_split_into_simple_commands() {
        let commands = simple_commands(&words(&[
            "sh",
            "-c",
            "cat /a; env | grep AWS && echo $(id)",
        ]));
        assert_eq!(
            commands,
            vec![
                words(&["sh", "-c"]),
                words(&["cat", "/a"]),
                words(&["env"]),
                words(&["grep", "AWS"]),
                words(&["echo"]),
                words(&["id"]),
            ]
        );
    }

    #[test]
    fn credential_reads_in_every_spelling() {
        for command in [
            vec!["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"],
            vec![
                "sh",
                "-c",
                "cat /run/secrets/kubernetes.io/serviceaccount/token | base64",
            ],
            vec!["/bin/bash", "-c", "cat $AWS_WEB_IDENTITY_TOKEN_FILE"],
            vec![
                "cat",
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
            ],
            vec![
                "cat",
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            ],
            vec![
                "curl",
                "-s",
                "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            ],
            vec![
                "sh",
                "-c",
                "curl $AWS_CONTAINER_CREDENTIALS_FULL_URI -H \"Authorization: $(cat $AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)\"",
            ],
            vec!["cat", "/root/.aws/credentials"],
            vec!["env"],
            vec!["/usr/bin/printenv", "AWS_SECRET_ACCESS_KEY"],
            vec!["sh", "-c", "env | grep -i token"],
            vec!["cat", "/proc/1/environ"],
            vec!["cat", "/etc/kubernetes/admin.conf"],
        ] {
            assert!(credential_read(&words(&command)).is_some(), "{command:?}");
        }
    }

    #[test]
    fn ordinary_commands_read_no_credential() {
        for command in [
            vec!["ls", "-la", "/var/run"],
            vec!["env", "LANG=C", "sort", "file"],
            vec!["/usr/bin/env", "python3", "manage.py", "migrate"],
            vec!["sh", "-c", "cat /etc/nginx/nginx.conf"],
            vec!["cat", "/etc/environment"],
            vec!["ps", "aux"],
        ] {
            assert_eq!(credential_read(&words(&command)), None, "{command:?}");
        }
    }

    #[test]
    fn kubectl_cp_out_is_told_from_cp_in_and_other_tar() {
        for out in [
            vec!["tar", "cf", "-", "/var/lib/data"],
            vec!["tar", "-cf", "-", "-C", "/app", "config"],
            vec!["tar", "czf", "-", "/etc"],
            vec!["sh", "-c", "tar -c /srv | gzip"],
        ] {
            assert!(copies_files_out(&words(&out)), "{out:?}");
        }
        for other in [
            vec!["tar", "xmf", "-", "-C", "/tmp"],
            vec!["tar", "-tf", "/backup.tar"],
            vec!["tar", "-cf", "/tmp/backup.tar", "/data"],
            vec!["cat", "file"],
        ] {
            assert!(!copies_files_out(&words(&other)), "{other:?}");
        }
    }
}
