#!/usr/bin/env bash
# The release gate: a kind cluster, the operator image, the kind overlay, the cluster tests.
# Needs docker, kind and kubectl (>= 1.33). Run from anywhere:  bash e2e/kind.sh
# KEEP_CLUSTER=1 keeps the cluster afterwards for debugging.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=scs-e2e
image=scs-operator:e2e

for tool in docker kind kubectl cargo; do
  command -v "$tool" >/dev/null || { echo "e2e/kind.sh needs $tool" >&2; exit 2; }
done

cleanup() {
  if [ "${KEEP_CLUSTER:-}" != 1 ]; then kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; fi
}
dump() {
  echo "--- operator logs" >&2
  kubectl -n scs-system logs deploy/scs-operator --tail=500 >&2 || true
  echo "--- device plugin logs" >&2
  kubectl -n scs-device-plugins logs -l app.kubernetes.io/name=scs-device-plugin --tail=200 >&2 || true
  echo "--- scs objects" >&2
  kubectl get tenants,sdnnetworks,secureworkloads -A -o yaml >&2 || true
  echo "--- events" >&2
  kubectl get events -A --sort-by=.lastTimestamp >&2 || true
}
trap cleanup EXIT

kind create cluster --config e2e/kind/cluster.yaml --wait 120s
docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"
# The tests' pods run busybox under two pinned tags with imagePullPolicy IfNotPresent, as on
# localkube (e2e::cluster::BUSYBOX, BUSYBOX_NEXT).
docker pull busybox:1.36
docker tag busybox:1.36 busybox:1.37
kind load docker-image busybox:1.36 busybox:1.37 --name "$cluster"

kubectl apply --server-side -k manifests/overlays/kind
kubectl wait --for=condition=Established crd --all --timeout=60s
if ! kubectl -n scs-system rollout status deploy/scs-operator --timeout=180s; then
  dump
  exit 1
fi

if ! cargo test -p e2e --features cluster --test cluster --test cluster_fence --test cluster_status --test cluster_history --test cluster_options --test cluster_images --test cluster_gpu --test cluster_patrol --test cluster_networks --test cluster_preauth --test cluster_apf --test cluster_cache --test cluster_kind -- --test-threads=1; then
  dump
  exit 1
fi
echo "e2e on kind: passed"
