#!/usr/bin/env bash
# Run a journalled method call again on only the targets that did not
# succeed (offline, timeout, failed, throttled, ...), with a new journal.
# The method comes from the journal's header; give the payload again in
# DMCTL_ARGS when the method needs one (journals never hold payloads).
#
#   ./examples/retry-failures-from-journal.sh reboot.journal > retry.jsonl
#
# (`dmctl invoke --resume JOURNAL` is different: it continues an interrupted
# run, running only the targets that have no result yet.)
#
# Exit code: dmctl's for the retry run; 0 and no call when nothing failed.
set -euo pipefail
DMCTL=${DMCTL:-dmctl}
journal=${1:?usage: $0 JOURNAL [NEW-JOURNAL]}
retry_journal=${2:-$journal.retry-$(date -u +%Y%m%dT%H%M%SZ)}
read -r -a extra <<<"${DMCTL_ARGS:-}"

method=$(head -n 1 "$journal" | sed -n 's/.*"method":"\([^"]*\)".*/\1/p')
[ -n "$method" ] || { echo "$journal: no dmctl journal header with a method on its first line" >&2; exit 2; }

# Result lines carry an outcome; dispatched lines and the header do not.
# --devices-file reads the deviceId (and moduleId) of each JSON line.
failed=$(grep '"outcome":"' "$journal" | grep -v '"outcome":"succeeded"' || true)
if [ -z "$failed" ]; then
  echo "every target in $journal succeeded: nothing to retry" >&2
  exit 0
fi
echo "retrying $method on $(printf '%s\n' "$failed" | wc -l | tr -d ' ') targets from $journal" >&2
printf '%s\n' "$failed" | exec "$DMCTL" invoke "$method" "${extra[@]}" --devices-file - \
  --journal "$retry_journal" --yes -o jsonl
