#!/usr/bin/env bash
# Starts N simulated Edge stacks on this host against the Central stack (deploy/central),
# each with its own compose project, device MAC, credential, ports and database.
#
#   deploy/simulate-fleet.sh up 5      # devices 1..5 (MACs from the seed: 02:01:00:00:00:00, …)
#   deploy/simulate-fleet.sh down 5
#
# Needs: the Central stack running (its API on CENTRAL_PORT, default 8080), docker compose,
# and MANIFEST_PUBLIC_KEYS (the second line of `dbupdate central keygen`) in deploy/central/.env.
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
  {
    echo "EDGE_DB_PASSWORD=edge-$i-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    echo "CENTRAL_URL=http://host.docker.internal:$central_port"
    echo "DEVICE_MAC=$mac"
    echo "DEVICE_TOKEN=$token"
    grep '^MANIFEST_PUBLIC_KEYS=' "$here/central/.env"
    echo "EDGE_PORT=$((base_port + i))"
    echo "EDGE_DB_PORT=$((base_db_port + i))"
    echo "SYNC_INTERVAL_SECONDS=${SYNC_INTERVAL_SECONDS:-60}"
  } > "$env_file"
  chmod 600 "$env_file"
  docker compose -p "$project" -f "$here/edge/compose.yaml" --env-file "$env_file" up -d
  echo "[{\"targets\": [\"host.docker.internal:$((base_port + i))\"], \"labels\": {\"device\": \"device-$i\"}}]" \
    > "$here/observability/edges/device-$i.json"
  echo "device $i: $mac, API on port $((base_port + i))"
done
