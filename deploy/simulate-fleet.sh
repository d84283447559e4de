#!/usr/bin/env bash
# Starts N simulated Edge stacks on this host against the Central stack (deploy/central),
# each with its own compose project, device MAC, credential, ports and database.
#
#   deploy/simulate-fleet.sh up 5      # devices 1..5 (MACs from the seed: 02:01:00:00:00:00, …)
#   deploy/simulate-fleet.sh down 5
#
# Needs: the Central stack running with deploy/central/.env; Compose v2 (`docker compose`) or
# v1 (`docker-compose`); MANIFEST_PUBLIC_KEYS (the second line of `dbupdate central keygen`) in
# deploy/central/.env or in the environment. The devices reach Central as a real one does:
# through its TLS terminator, at https://host.docker.internal:CENTRAL_HTTPS_PORT (the port read
# from deploy/central/.env), so Central's certificate must name host.docker.internal and be
# published where containers reach this host (CENTRAL_HTTPS_BIND: all interfaces, or the Docker
# bridge's address). The CA that signed it is pinned: deploy/central/tls/ca.pem, or the file
# CENTRAL_CA names (CENTRAL_CA=none for a publicly trusted certificate). Each device's settings,
# credential included, go to deploy/fleet/ (0600); its metrics port, for the stack's
# Prometheus, to deploy/observability/edges/ (published on CENTRAL_HTTPS_BIND's address).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
action="${1:-}"
count="${2:-3}"
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

command -v docker >/dev/null || fail "docker is not on PATH; this script starts containers"
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  fail "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
fi

central_env="$here/central/.env"
# A setting of Central's .env (the environment wins), or a default.
setting() {
  local value
  value="${!1:-}"
  if [[ -z "$value" && -f "$central_env" ]]; then
    value="$(grep "^$1=" "$central_env" | tail -n 1 | cut -d= -f2- || true)"
  fi
  echo "${value:-$2}"
}
if [[ "$action" == "up" ]]; then
  [[ -f "$central_env" ]] || fail "$central_env is missing: set up the Central stack first (README, Deployment)"
  # Central itself needs only the private key; the edges need the public one, kept beside it.
  public_keys="$(setting MANIFEST_PUBLIC_KEYS '')"
  [[ -n "$public_keys" ]] ||
    fail "no MANIFEST_PUBLIC_KEYS: add the second line of 'dbupdate central keygen' to $central_env, or export it"
  https_port="$(setting CENTRAL_HTTPS_PORT 443)"
  bind="$(setting CENTRAL_HTTPS_BIND 0.0.0.0)"
  ca="${CENTRAL_CA:-$here/central/tls/ca.pem}"
  ca_setting=""
  if [[ "$ca" != none ]]; then
    [[ -f "$ca" ]] || fail "no CA to pin at $ca: put the CA of Central's certificate there, or set CENTRAL_CA (none: a public one)"
    # Every simulated device mounts deploy/edge/tls; the CA is no secret.
    cp "$ca" "$here/edge/tls/ca.pem"
    chmod 0644 "$here/edge/tls/ca.pem"
    ca_setting=/etc/dbupdate/tls/ca.pem
  fi
  mkdir -p "$here/fleet"
fi

central() {
  "${compose[@]}" -p dbupdate-central -f "$here/central/compose.yaml" --env-file "$central_env" "$@"
}

starting=()
for ((i = 1; i <= count; i++)); do
  project="dbupdate-edge-$i"
  env_file="$here/fleet/device-$i.env"
  if [[ "$action" == "down" ]]; then
    if [[ -f "$env_file" ]]; then
      "${compose[@]}" -p "$project" -f "$here/edge/compose.yaml" --env-file "$env_file" down
    fi
    rm -f "$here/observability/edges/device-$i.json"
    continue
  fi
  # Seeded devices have MACs 02:<seed>:<device number in hex>; seed 1 by default.
  mac=$(printf '02:01:00:00:%02x:%02x' $(((i - 1) / 256)) $(((i - 1) % 256)))
  token=$(central exec -T central-db-update-api bin/dbupdate.ts central enroll --mac "$mac" | tail -n 1)
  [[ -n "$token" ]] || fail "enrolling $mac printed no credential; is the Central stack up?"
  # The file holds a credential: private from its first byte, not after a chmod.
  (
    umask 077
    {
      echo "EDGE_DB_PASSWORD=edge-$i-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
      echo "EDGE_DB_ADMIN_PASSWORD=admin-$i-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
      echo "EDGE_READER_PASSWORD=reader-$i-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
      # Through the TLS terminator, its certificate checked against the pinned CA.
      echo "CENTRAL_URL=https://host.docker.internal:$https_port"
      echo "CENTRAL_CA_FILE=$ca_setting"
      # Metrics for the stack's Prometheus, which scrapes host.docker.internal:EDGE_PORT.
      echo "EDGE_BIND=$bind"
      echo "DEVICE_MAC=$mac"
      echo "DEVICE_TOKEN=$token"
      echo "MANIFEST_PUBLIC_KEYS=$public_keys"
      echo "EDGE_PORT=$((base_port + i))"
      echo "EDGE_DB_PORT=$((base_db_port + i))"
      echo "SYNC_INTERVAL_SECONDS=${SYNC_INTERVAL_SECONDS:-60}"
    } >"$env_file"
  )
  # The stacks start side by side (each waits for its own database's health check).
  "${compose[@]}" -p "$project" -f "$here/edge/compose.yaml" --env-file "$env_file" up -d \
    >"$here/fleet/device-$i.up.log" 2>&1 &
  starting+=("$!:$i")
  # Readable by Prometheus, which runs as nobody; it names no secret.
  echo "[{\"targets\": [\"host.docker.internal:$((base_port + i))\"], \"labels\": {\"device\": \"device-$i\"}}]" \
    >"$here/observability/edges/device-$i.json"
  chmod 0644 "$here/observability/edges/device-$i.json"
  echo "device $i: $mac, API on port $((base_port + i))"
done
failed=0
for entry in "${starting[@]}"; do
  if ! wait "${entry%%:*}"; then
    echo "simulate-fleet: device ${entry#*:} did not start:" >&2
    tail -n 20 "$here/fleet/device-${entry#*:}.up.log" >&2
    failed=1
  fi
done
exit "$failed"
