#!/usr/bin/env bash
# The tools the chart tests (tests/unit/test_helm.py) need, installed once per machine under
# ~/.cache/newsmon/chart-tools/ (every checkout, and CI's fresh clone, find them there;
# NEWSMON_CHART_TOOLS moves it) and cheap afterwards (one `test -x`, one `test -f`):
# - helm, built from the Go module proxy with `go install` (a few minutes, once);
# - @kubernetes-models/keda and /prometheus-operator from npm: the CRD schemas of KEDA and
#   the Prometheus Operator compiled to validators, with which the tests check the
#   rendered ScaledObjects, TriggerAuthentications, ServiceMonitors and PrometheusRules.
# setup-system.sh runs this after the system packages (go, node, npm) are there. On
# failure it stops with one line saying what is missing.
set -euo pipefail

HELM_VERSION=v3.21.4                 # bump here; the tests find the binary by this path
K8S_MINOR=36                         # helm v3.21's k8s.io modules (v0.36): its default
                                     # Kubernetes version, as helm's Makefile sets it
# CRD schemas compiled to validators (the packages follow the projects' CRDs):
SCHEMA_PACKAGES=(@kubernetes-models/keda@0.4.2 @kubernetes-models/prometheus-operator@6.0.0)
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${NEWSMON_CHART_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/newsmon/chart-tools}
helm=$tools/helm-$HELM_VERSION/helm

install_helm() {
  [ -x "$helm" ] && return
  local go started package
  go=${NEWSMON_GO:-$(command -v go || echo /usr/local/go/bin/go)}  # Go's own install path
  if ! [ -x "$go" ]; then
    echo "install-chart-tools: go not found (PATH or /usr/local/go/bin): install Go >= 1.24 to build helm, then run make test again" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$helm")"
  build=$(mktemp -d "$tools/.build.XXXXXX")  # global: the EXIT trap removes it
  trap 'rm -rf "$build"' EXIT
  echo "install-chart-tools: building helm $HELM_VERSION with $go (once; a few minutes)" >&2
  started=$SECONDS
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for package in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$package.k8sVersionMajor=1"
    ldflags+=" -X helm.sh/helm/v3/$package.k8sVersionMinor=$K8S_MINOR"
  done
  if ! GOBIN=$build CGO_ENABLED=0 GOFLAGS= "$go" install -trimpath -ldflags "$ldflags" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2; then
    echo "install-chart-tools: go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed (see above)" >&2
    exit 1
  fi
  mv "$build/helm" "$helm"
  echo "install-chart-tools: $helm built in $((SECONDS - started)) s" >&2
}

install_schemas() {
  [ -f "$tools/node_modules/@kubernetes-models/keda/package.json" ] &&
    [ -f "$tools/node_modules/@kubernetes-models/prometheus-operator/package.json" ] && return
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-chart-tools: npm not found: install nodejs and npm, then run make test again" >&2
    exit 1
  fi
  mkdir -p "$tools"
  echo "install-chart-tools: npm install ${SCHEMA_PACKAGES[*]} (CRD schemas)" >&2
  if ! npm install --prefix "$tools" --no-audit --no-fund --silent "${SCHEMA_PACKAGES[@]}" >&2; then
    echo "install-chart-tools: npm install ${SCHEMA_PACKAGES[*]} failed (see above)" >&2
    exit 1
  fi
}

install_helm
install_schemas
