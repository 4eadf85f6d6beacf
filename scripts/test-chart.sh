#!/usr/bin/env bash
# The Helm chart's tests, offline once the tools are fetched: helm lint; helm template with the
# defaults, with every feature on (KEDA) and with HPAs; every rendered manifest validated against the
# Kubernetes API schemas (kubernetes-validate from PyPI, strict) and the KEDA and Prometheus Operator
# CRD schemas (their CRDs from the Go module proxy); and values files with a mistake refused by
# values.schema.json with a message naming it. Tools are cached in target/chart-tools.
# Needs go and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v4.3.2
KUBERNETES_VALIDATE_VERSION=1.34.1
KUBERNETES_VERSION=1.34.0
KEDA_MODULE=github.com/kedacore/keda/v2@v2.18.1
PROMETHEUS_OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator@v0.89.0

tools="$PWD/target/chart-tools"
out="$PWD/target/chart"
mkdir -p "$tools" "$out"

helm="$tools/bin/helm"
# `go install` does not stamp helm's version into it: a file beside it says which was built.
if [ ! -x "$helm" ] || [ "$(cat "$helm.version" 2>/dev/null)" != "$HELM_VERSION" ]; then
  echo "chart tests: building helm $HELM_VERSION from the Go module proxy (once)" >&2
  GOBIN="$tools/bin" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$helm.version"
fi
python="$tools/venv/bin/python"
if [ ! -x "$python" ] || ! "$python" -c "import kubernetes_validate" 2>/dev/null; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
module_dir() {
  (cd "$tools" && go mod download -json "$1") | "$python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}
keda=$(module_dir "$KEDA_MODULE")
prometheus_operator=$(module_dir "$PROMETHEUS_OPERATOR_MODULE")
crds=()
for crd in "$keda"/config/crd/bases/keda.sh_*.yaml \
           "$prometheus_operator"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml; do
  crds+=(--crd "$crd")
done

chart=charts/vigil
"$helm" lint --strict "$chart"
rendered=()
for values in default "$chart"/ci/*.yaml; do
  name=$(basename "$values" .yaml)
  if [ "$values" = default ]; then
    "$helm" lint --strict "$chart" >/dev/null
    "$helm" template vigil "$chart" --namespace vigil > "$out/$name.yaml"
  else
    "$helm" lint --strict "$chart" --values "$values" >/dev/null
    "$helm" template vigil "$chart" --namespace vigil --values "$values" > "$out/$name.yaml"
  fi
  rendered+=("$out/$name.yaml")
done
"$python" scripts/chart/validate.py --kubernetes "$KUBERNETES_VERSION" "${crds[@]}" "${rendered[@]}"

# The validator itself refuses what it must: each known-bad manifest fails, naming the field.
for invalid in "$chart"/tests/invalid/*.yaml; do
  expected=$(sed -n 's/^# expect: //p' "$invalid")
  if message=$("$python" scripts/chart/validate.py --kubernetes "$KUBERNETES_VERSION" "${crds[@]}" "$invalid" 2>&1); then
    echo "chart tests: the validator passed $invalid, which is invalid" >&2
    exit 1
  fi
  if ! grep -q -- "$expected" <<<"$message"; then
    echo "chart tests: the validator refused $invalid without naming $expected:" >&2
    echo "$message" >&2
    exit 1
  fi
done

# A values file with a mistake is refused, and the message names the mistake.
for mistake in "$chart"/tests/mistakes/*.yaml; do
  expected=$(sed -n 's/^# expect: //p' "$mistake")
  if message=$("$helm" template vigil "$chart" --values "$mistake" 2>&1 >/dev/null); then
    echo "chart tests: $mistake was accepted; values.schema.json must refuse it" >&2
    exit 1
  fi
  if ! grep -q -- "$expected" <<<"$message"; then
    echo "chart tests: $mistake was refused without naming $expected:" >&2
    echo "$message" >&2
    exit 1
  fi
done
echo "chart tests: lint, $(ls "$chart"/ci/*.yaml | wc -l) feature sets and the defaults valid; $(ls "$chart"/tests/mistakes/*.yaml | wc -l) mistakes refused"
