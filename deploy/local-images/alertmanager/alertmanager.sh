#!/bin/bash
# /bin/alertmanager of the stand-in. Debian's Alertmanager is 0.25, and a webhook's `url_file`
# came in 0.26: for each url_file of the configuration, this writes the URL the file holds
# inline into a private copy of it, and starts Alertmanager on the copy. The stack's own
# configuration is used unchanged otherwise.
set -euo pipefail
args=()
for arg in "$@"; do
  case "$arg" in
    --config.file=*)
      conf="${arg#--config.file=}"
      if grep -q 'url_file:' "$conf"; then
        copy=/tmp/alertmanager-inline.yml
        (umask 077 && awk '
          match($0, /url_file:[ ]*/) {
            file = substr($0, RSTART + RLENGTH); url = ""; getline url < file
            gsub(/"/, "\\\"", url)
            $0 = substr($0, 1, RSTART - 1) "url: \"" url "\""
          }
          { print }' "$conf" >"$copy")
        arg="--config.file=$copy"
      fi
      ;;
  esac
  args+=("$arg")
done
exec /usr/bin/prometheus-alertmanager "${args[@]}"
