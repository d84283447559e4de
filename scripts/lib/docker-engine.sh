# shellcheck shell=bash
# Shared by scripts/container-check and scripts/arm64-image-check (sourced; checked through them).

# Starts dockerd when no engine answers, with its pidfile and log in DIR; sets engine_pid to the
# pid of the one it started (empty when an engine already answered), for the caller to stop.
start_engine() { # DIR
  engine_pid=""
  docker info >/dev/null 2>&1 && return 0
  dockerd --pidfile "$1/dockerd.pid" >"$1/dockerd.log" 2>&1 &
  engine_pid=$!
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}

# The CAs npm must trust inside the builds where egress re-signs TLS: EXTRA_CA_FILE, else this
# host's local CAs (/usr/local/share/ca-certificates), else none.
extra_ca_certs() {
  if [ -n "${EXTRA_CA_FILE:-}" ]; then
    cat "$EXTRA_CA_FILE"
  elif compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cat /usr/local/share/ca-certificates/*.crt
  fi
}
