#!/usr/bin/env bash
# The scale harness against a real API server and etcd: the one-node localkube cluster.
#
#   bash e2e/scale-localkube.sh [--tenants N] [--workloads M]      # as root; default 100 / 1000
#
# Installs the kind overlay (CRDs, RBAC, admission policies, the optional APF component), scales
# the installed operator to zero (the harness runs the controllers itself, as the operator's
# ServiceAccount) and back afterwards, runs `scale --kubeconfig`, and prints its JSON line.
# Holds /tmp/scs-cluster.lock so it never runs beside the cluster suite on the same cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
localkube=${LOCALKUBE:-$repo/../shared/localkube/localkube}
[ -x "$localkube" ] || { echo "e2e/scale-localkube.sh: localkube not found at $localkube (set LOCALKUBE)" >&2; exit 2; }

exec 9>/tmp/scs-cluster.lock
flock 9
eval "$("$localkube" up)"
eval "$("$localkube" env)"
export KUBECONFIG
kubectl() { "$localkube" kubectl "$@"; }

# SCALE_BIN runs another build of the harness (e.g. one kept from before a change).
[ -n "${SCALE_BIN:-}" ] || cargo build --release --locked -p e2e --bins
kubectl apply --server-side --force-conflicts -k manifests/overlays/kind >/dev/null
kubectl wait --for=condition=Established crd/tenants.scs.dev crd/secureworkloads.scs.dev --timeout=60s >/dev/null
restore() { kubectl -n scs-system scale deploy/scs-operator --replicas=2 >/dev/null || true; }
trap restore EXIT
kubectl -n scs-system scale deploy/scs-operator --replicas=0 >/dev/null
kubectl -n scs-system wait --for=delete pod -l app.kubernetes.io/name=scs-operator --timeout=120s >/dev/null || true
# Namespaces of an earlier run may still be terminating: new workloads cannot go there.
leftovers=$(kubectl get namespaces -o name | grep -E '^namespace/t[0-9]+-[ab]$' || true)
[ -z "$leftovers" ] || kubectl wait --for=delete $leftovers --timeout=600s >/dev/null
config=$(mktemp)
kubectl -n scs-system get configmap scs-operator-config -o jsonpath='{.data.operator-config\.yaml}' >"$config"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
"${SCALE_BIN:-$target_dir/release/scale}" --kubeconfig "$KUBECONFIG" --config "$config" "$@"
