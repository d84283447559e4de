#!/usr/bin/env bash
# Starts N simulated Edge stacks on this host against the Central stack (deploy/central),
# each with its own compose project, device MAC, credential, ports and database.
#
#   deploy/simulate-fleet.sh up 5      # devices 1..5 (MACs from the seed: 02:01:00:00:00:00, …)
#   deploy/simulate-fleet.sh down 5
#
# Needs: the Central stack running (its API on CENTRAL_PORT, default 8080), docker compose,
# and MANIFEST_PUBLIC_KEYS (the second line of `dbupdate central keygen`) in deploy/central/.env
# or in the environment. Each device's settings, credential included, go to deploy/fleet/ (0600).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
action="${1:-}"
count="${2:-3}"
central_port="${CENTRAL_PORT:-8080}"
base_port="${BASE_PORT:-18081}"
base_db_port="${BASE_DB_PORT:-15433}"

if [[ "$action" != "up" && "$action" != "down" ]] || ! [[ "$count" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 up|down N" >&2
  exit 2
fi

fail() {
  echo "simulate-fleet: $*" >&2
  exit 1
}
trap 'echo "simulate-fleet: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

central_env="$here/central/.env"
if [[ "$action" == "up" ]]; then
  command -v docker >/dev/null || fail "docker is not on PATH; this script starts containers"
  [[ -f "$central_env" ]] || fail "$central_env is missing: set up the Central stack first (README, Deployment)"
  # Central itself needs only the private key; the edges need the public one, kept beside it.
  public_keys="${MANIFEST_PUBLIC_KEYS:-$(grep '^MANIFEST_PUBLIC_KEYS=' "$central_env" | cut -d= -f2- || true)}"
  [[ -n "$public_keys" ]] ||
    fail "no MANIFEST_PUBLIC_KEYS: add the second line of 'dbupdate central keygen' to $central_env, or export it"
fi

central() {
  docker compose -p dbupdate-central -f "$here/central/compose.yaml" --env-file "$here/central/.env" "$@"
}

for ((i = 1; i <= count; i++)); do
  project="dbupdate-edge-$i"
  env_file="$here/fleet/device-$i.env"
  if [[ "$action" == "down" ]]; then
    docker compose -p "$project" -f "$here/edge/compose.yaml" --env-file "$env_file" down
    rm -f "$here/observability/edges/device-$i.json"
    continue
  fi
  # Seeded devices have MACs 02:<seed>:<device number in hex>; seed 1 by default.
  mac=$(printf '02:01:00:00:%02x:%02x' $(((i - 1) / 256)) $(((i - 1) % 256)))
  token=$(central exec -T central-db-update-api bin/dbupdate.ts central enroll --mac "$mac" | tail -n 1)
  [[ -n "$token" ]] || fail "enrolling $mac printed no credential; is the Central stack up?"
  # The file holds a credential: private from its first byte, not after a chmod.
  umask 077
  {
    echo "EDGE_DB_PASSWORD=edge-$i-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    echo "EDGE_READER_PASSWORD=reader-$i-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    # One host, no TLS between the simulated devices and Central: a lab, said so.
    echo "CENTRAL_URL=http://host.docker.internal:$central_port"
    echo "ALLOW_INSECURE_HTTP=true"
    echo "EDGE_BIND=0.0.0.0"
    echo "DEVICE_MAC=$mac"
    echo "DEVICE_TOKEN=$token"
    echo "MANIFEST_PUBLIC_KEYS=$public_keys"
    echo "EDGE_PORT=$((base_port + i))"
    echo "EDGE_DB_PORT=$((base_db_port + i))"
    echo "SYNC_INTERVAL_SECONDS=${SYNC_INTERVAL_SECONDS:-60}"
  } > "$env_file"
  docker compose -p "$project" -f "$here/edge/compose.yaml" --env-file "$env_file" up -d
  echo "[{\"targets\": [\"host.docker.internal:$((base_port + i))\"], \"labels\": {\"device\": \"device-$i\"}}]" \
    > "$here/observability/edges/device-$i.json"
  echo "device $i: $mac, API on port $((base_port + i))"
done
