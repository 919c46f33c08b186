#!/usr/bin/env bash
# Start a firmware update on some devices and wait until each one reports the
# outcome in its twin (properties.reported.iothubDM.firmwareUpdate.status,
# the IoT Hub device-management convention): applyComplete is success;
# downloadFailed or applyFailed (or anything ending in Failed) is failure.
#
# This polls `dmctl twin show --path ...`, which works with any dmctl. A
# dmctl that has `dmctl invoke ... --wait firmware` does the waiting in one
# command; see `dmctl invoke --help`.
#
#   FW_URI=https://example.com/fw-2.0.bin ./examples/firmware-update-and-wait.sh thermostat-1 thermostat-2
#
# Exit code: 0 every device applied the update; 4 at least one failed, did
# not take the call, or did not finish within $WAIT_TIMEOUT seconds; 2 usage.
set -euo pipefail
DMCTL=${DMCTL:-dmctl}
FW_URI=${FW_URI:?set FW_URI to the https:// URL of the firmware package}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-900}
POLL=${POLL:-5}
read -r -a extra <<<"${DMCTL_ARGS:-}"
[ $# -gt 0 ] || { echo "usage: FW_URI=https://... $0 DEVICE-ID..." >&2; exit 2; }
case $FW_URI in
  https://*) ;;
  *) echo "FW_URI must be an https:// URL" >&2; exit 2 ;;
esac
case $FW_URI in *'"'*|*'\'*) echo "FW_URI must not contain quotes or backslashes" >&2; exit 2 ;; esac

targets=()
for d in "$@"; do targets+=(--device "$d"); done

# 1. Start the update. A device that refuses or is offline fails here.
set +e
"$DMCTL" invoke firmwareUpdate "${extra[@]}" "${targets[@]}" --yes \
  --payload "{\"fwPackageUri\":\"$FW_URI\"}" -o name >/dev/null
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "firmwareUpdate was not accepted by every device (dmctl exited $rc)" >&2
  exit $rc
fi

# 2. Wait for each device's outcome.
deadline=$((SECONDS + WAIT_TIMEOUT))
pending=("$@")
failed=0
while [ ${#pending[@]} -gt 0 ]; do
  still=()
  for d in "${pending[@]}"; do
    status=$("$DMCTL" twin show "${extra[@]}" --device "$d" \
      --path properties.reported.iothubDM.firmwareUpdate.status 2>/dev/null || echo '"unknown"')
    status=${status//\"/}
    case $status in
      applyComplete) echo "$d applyComplete" ;;
      *Failed) echo "$d $status" ; failed=1 ;;
      *) still+=("$d") ;;
    esac
  done
  pending=("${still[@]+"${still[@]}"}")
  [ ${#pending[@]} -eq 0 ] && break
  if [ $SECONDS -ge $deadline ]; then
    for d in "${pending[@]}"; do echo "$d timeout" ; done
    failed=1
    break
  fi
  sleep "$POLL"
done
[ $failed -eq 0 ] || exit 4
