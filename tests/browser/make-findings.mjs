// Writes N GuardDuty-shaped findings as JSON lines to stdout, for the large-report check:
// distinct ids (finding-0 ... finding-N-1), types and severities spread, times a minute apart.
const count = Number(process.argv[2] || 100000);
const types = ["Discovery:Kubernetes/SuccessfulAnonymousAccess", "Execution:Kubernetes/ExecInPod",
  "CredentialAccess:Kubernetes/MaliciousIPCaller.Custom", "Execution:Runtime/SuspiciousCommand"];
const severities = [2, 5, 8, 9];
const start = Date.parse("2024-03-01T00:00:00Z");
const lines = [];
for (let i = 0; i < count; i += 1) {
  const seen = new Date(start + i * 60_000).toISOString();
  // The first explains itself as the baselines' findings do (GuardDuty's anomaly shape).
  const detection = i === 0 ? { anomaly: {
    profiles: { namespace: { "principal:alice": [{ profileType: "FREQUENCY", profileSubtype: "FREQUENT", observations: { text: ["shop", "payments"] } }] } },
    unusual: { behavior: { "principal:alice": { namespace: { profileType: "FREQUENCY", profileSubtype: "UNSEEN", observations: { text: ["kube-system"] } } } } },
  } } : undefined;
  lines.push(JSON.stringify({
    id: `finding-${i}`, type: types[i % types.length], severity: severities[i % severities.length],
    title: `Finding ${i}`, description: `Synthetic finding ${i} for the large-report check.`,
    resource: { eksClusterDetails: { name: "prod" }, kubernetesDetails: { kubernetesUserDetails: { username: `user-${i % 997}` } } },
    service: { count: 1 + (i % 5), eventFirstSeen: seen, eventLastSeen: seen, archived: false, detection },
  }));
  if (lines.length === 10_000) { process.stdout.write(lines.join("\n") + "\n"); lines.length = 0; }
}
if (lines.length) process.stdout.write(lines.join("\n") + "\n");
