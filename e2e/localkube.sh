#!/usr/bin/env bash
# The release gate without Docker: a real one-node Kubernetes from ../shared/localkube (etcd,
# kube-apiserver, controller-manager, scheduler, kubelet with containerd and runc), the operator
# built here and loaded as an image, the kind overlay (RuntimeClass handler runc), the cluster tests.
#
#   bash e2e/localkube.sh            # as root; run from anywhere
#
# LOCALKUBE=path/to/localkube overrides where localkube is found. KEEP_CLUSTER=1 leaves the
# test objects in place afterwards (the cluster always stays up; `localkube down` stops it).
# Every failure is fatal, in CI as anywhere: a cluster that cannot come up is never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

localkube=${LOCALKUBE:-$repo/../shared/localkube/localkube}
image=scs-operator:e2e
[ -x "$localkube" ] || { echo "e2e/localkube.sh: localkube not found at $localkube (set LOCALKUBE)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "e2e/localkube.sh: localkube needs root" >&2; exit 2; }

started=$(date +%s)
step() { echo "--- [$(($(date +%s) - started))s] $*" >&2; }

step "cluster up"
eval "$("$localkube" up)"
eval "$("$localkube" env)"
export KUBECONFIG
kubectl() { "$localkube" kubectl "$@"; }
# The tests shell out to kubectl (kustomize builds, server-side dry runs): use the bundled one.
KUBECTL_DIR=$(mktemp -d)
ln -s "$KUBEBUILDER_ASSETS/kubectl" "$KUBECTL_DIR/kubectl"
export PATH="$KUBECTL_DIR:$PATH"

dump() {
  echo "--- operator logs" >&2
  kubectl -n scs-system logs -l app.kubernetes.io/name=scs-operator --tail=300 --prefix >&2 || true
  echo "--- pods" >&2
  kubectl get pods -A -o wide >&2 || true
  echo "--- scs objects" >&2
  kubectl get tenants,sdnnetworks,secureworkloads -A -o yaml >&2 || true
  echo "--- events" >&2
  kubectl get events -A --sort-by=.lastTimestamp >&2 || true
}

# Custom resources left by an earlier run (the install itself is upgraded in place). Tenants go
# while the operator runs: their finalizer needs it.
remove_test_objects() {
  kubectl get crd tenants.scs.dev >/dev/null 2>&1 || return 0
  kubectl annotate tenants --all scs.dev/force-delete=true --overwrite >/dev/null 2>&1 || true
  kubectl delete secureworkloads --all -A --wait=false >/dev/null 2>&1 || true
  kubectl delete tenants,sdnnetworks --all --timeout=120s >/dev/null 2>&1 || true
  kubectl delete patrols,notificationchannels --all --timeout=60s >/dev/null 2>&1 || true
}

# The tests' pods run busybox under pinned tags (the tenant image rules refuse :latest): tag the
# node's local busybox (e2e::cluster::BUSYBOX, BUSYBOX_NEXT). Never pulled.
step "tag the test image"
for tag in 1.36 1.37; do
  ctr -a "${LOCALKUBE_DIR:-/tmp/localkube}/containerd/containerd.sock" -n k8s.io images tag --force \
    docker.io/library/busybox:latest "docker.io/library/busybox:$tag" >/dev/null
done

step "build the operator"
cargo build -p scs-operator --locked
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
step "load image $image"
"$localkube" image-load "$image" "$target_dir/debug/scs-operator:/usr/local/bin/scs-operator" >/dev/null

step "install the kind overlay"
remove_test_objects
kubectl apply --server-side --force-conflicts -k manifests/overlays/kind >/dev/null
kubectl wait --for=condition=Established crd/tenants.scs.dev crd/sdnnetworks.scs.dev crd/secureworkloads.scs.dev crd/patrols.scs.dev crd/notificationchannels.scs.dev --timeout=60s
# The image tag does not change between runs: restart so the new binary runs (the operator and
# the authz-server; the node tests install the device plugin themselves).
kubectl -n scs-system rollout restart deploy/scs-operator deploy/scs-authz-server >/dev/null
if ! kubectl -n scs-system rollout status deploy/scs-operator --timeout=180s ||
   ! kubectl -n scs-system rollout status deploy/scs-authz-server --timeout=180s; then
  dump
  exit 1
fi

step "cluster tests"
# How the node tests restart the kubelet (its device plugins live in /var/lib/kubelet/device-plugins).
# The test process runs on the node, on the pod bridge's gateway: pods reach it unmasqueraded
# (cluster_preauth runs the init container's whole path against a server there).
export SCS_E2E_PODS_REACH_HOST=1
export SCS_E2E_RESTART_KUBELET="kill \$(cat ${LOCALKUBE_DIR:-/tmp/localkube}/pids/kubelet) && sleep 2 && $localkube up"
status=0
cargo test -p e2e --features cluster --locked --no-fail-fast --test cluster --test cluster_fence --test cluster_status --test cluster_history --test cluster_options --test cluster_images --test cluster_gpu --test cluster_patrol --test cluster_networks --test cluster_preauth --test cluster_apf --test cluster_cache -- --test-threads=4 || status=$?
# The node tests restart the kubelet: they run alone, after the rest.
if [ "$status" = 0 ]; then
  cargo test -p e2e --features cluster --locked --test cluster_node -- --test-threads=1 || status=$?
fi
if [ "$status" != 0 ]; then
  dump
  exit "$status"
fi
[ "${KEEP_CLUSTER:-}" = 1 ] || remove_test_objects
step "e2e on localkube: passed"
