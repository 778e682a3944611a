#!/usr/bin/env bash
# Run ApiOps, its worker and PostgreSQL in a local kind cluster (see README.md).
#
#   ./setup.sh          create the cluster (if missing), build and load the image, apply
#   ./setup.sh render   print the local manifests only (needs kubectl, not Docker)
#
# Every kubectl call names the kind cluster's context, so your current context is never used.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CLUSTER=${CLUSTER:-apiops}
IMAGE=apiops:local
CONTEXT="kind-$CLUSTER"

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

kube() { kubectl --context "$CONTEXT" "$@"; }

# kustomize refuses an overlay that sits inside its own base (k8s/ contains k8s/local/), so
# the overlay is assembled in a temporary directory next to a link to the base.
render() {
  local tmp
  tmp=$(mktemp -d)
  cp "$HERE"/overlay/*.yaml "$tmp"/
  ln -s "$REPO/k8s" "$tmp/base"
  if ! kubectl kustomize "$tmp"; then
    rm -rf "$tmp"
    die "kubectl kustomize failed"
  fi
  rm -rf "$tmp"
}

random_secret() {
  python3 -c 'import secrets; print(secrets.token_urlsafe(32))'
}

# Secrets are made once: a second run must not change the password the database volume was
# initialised with.
ensure_secrets() {
  if kube -n ops get secret apiops-secrets >/dev/null 2>&1; then
    say "secrets exist, keeping them"
    return
  fi
  say "creating secrets apiops-postgres and apiops-secrets in namespace ops"
  local db_password api_key secret_key
  db_password=$(random_secret)
  api_key=$(random_secret)
  secret_key=$(random_secret)$(random_secret)
  kube -n ops create secret generic apiops-postgres \
    --from-literal=password="$db_password" \
    --dry-run=client -o yaml | kube apply -f -
  kube -n ops create secret generic apiops-secrets \
    --from-literal=api-key="$api_key" \
    --from-literal=secret-key="$secret_key" \
    --from-literal=db-url="postgresql://apiops:${db_password}@postgres.ops.svc:5432/apiops" \
    --dry-run=client -o yaml | kube apply -f -
}

up() {
  local tool
  for tool in docker kind kubectl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (see README.md)"
  done
  docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable"

  if kind get clusters | grep -qx "$CLUSTER"; then
    say "kind cluster $CLUSTER exists"
  else
    say "creating kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --wait 180s
  fi

  say "building $IMAGE"
  docker build -t "$IMAGE" "$REPO"
  say "loading $IMAGE into the cluster"
  kind load docker-image "$IMAGE" --name "$CLUSTER"

  kube create namespace ops --dry-run=client -o yaml | kube apply -f -
  ensure_secrets

  say "applying the local manifests"
  render | kube apply -f -

  say "waiting for the rollouts"
  kube -n ops rollout status deployment/postgres --timeout=300s
  kube -n prod rollout status statefulset/postgres --timeout=300s
  kube -n ops rollout status deployment/apiops --timeout=300s
  kube -n ops rollout status deployment/apiops-worker --timeout=300s

  cat <<EOF

ApiOps is running in kind cluster "$CLUSTER" (context $CONTEXT).
  kubectl --context $CONTEXT -n ops port-forward service/apiops 8000:80
  API key: kubectl --context $CONTEXT -n ops get secret apiops-secrets -o jsonpath='{.data.api-key}' | base64 -d
  curl -H "X-API-Key: \$KEY" -X POST -H 'Content-Type: application/json' \\
       -d '{"replicas": 1}' http://127.0.0.1:8000/ops/namespaces/prod/statefulsets/postgres/scale
Remove everything: kind delete cluster --name $CLUSTER
EOF
}

case "${1:-up}" in
  up) up ;;
  render) render ;;
  *) die "usage: $0 [up|render]" ;;
esac
