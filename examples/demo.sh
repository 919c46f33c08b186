#!/usr/bin/env bash
# The README's demo: start hubsim with a simulated fleet, reboot a few of its
# devices with dmctl, print the table, stop hubsim. Needs bin/dmctl and
# bin/hubsim (`make build`); `make demo` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
dir=$(mktemp -d)
trap 'kill "$hub" 2>/dev/null; wait "$hub" 2>/dev/null; rm -rf "$dir"' EXIT

# The ready line on stdout holds every key (hubsim makes ready.json mode 0600);
# `hubsim wait` returns once hubsim serves and has written hubsim.env.
"$BIN/hubsim" --dir "$dir" --devices 50 --seed 7 >"$dir/ready.json" 2>"$dir/hubsim.log" &
hub=$!
"$BIN/hubsim" wait --dir "$dir" --timeout 30s || {
  echo "hubsim did not become ready" >&2; cat "$dir/hubsim.log" >&2; exit 1
}

# hubsim.env holds IOTHUB_CONNECTION_STRING and the CA to trust, ready to source.
set -a
# shellcheck disable=SC1091
source "$dir/hubsim.env"
set +a

echo "\$ dmctl invoke reboot --device sim-000001 ... --device sim-000005" >&2
set +e
"$BIN/dmctl" invoke reboot --yes --ca-file "$DMCTL_CA_FILE" \
  --device sim-000001 --device sim-000002 --device sim-000003 --device sim-000004 --device sim-000005
rc=$?
set -e
echo "dmctl exited $rc" >&2
exit $rc
