#!/usr/bin/env bash
# Reboot every device whose twin has tags.site = $SITE, in waves: one device
# first, then 10%, 50% and the rest, pausing between waves and stopping if
# more than $MAX_FAILURES of the finished devices failed (exit 5). The run
# is journalled, so an interrupted rollout continues with
#   dmctl invoke --resume "$JOURNAL" --yes
#
# Needs dmctl on PATH (or DMCTL=/path/to/dmctl) and a credential it can use
# (IOTHUB_CONNECTION_STRING, a profile, or --hub/--auth in DMCTL_ARGS).
#
#   SITE=plant-a ./examples/reboot-by-tag-in-waves.sh > results.jsonl
#
# Exit code: dmctl's (0 all rebooted, 4 some did not, 5 stopped by the threshold).
set -euo pipefail
DMCTL=${DMCTL:-dmctl}
SITE=${SITE:?set SITE to the tags.site value of the devices to reboot}
WAVES=${WAVES:-1,10%,50%,100%}
WAVE_PAUSE=${WAVE_PAUSE:-2m}
MAX_FAILURES=${MAX_FAILURES:-5%}
JOURNAL=${JOURNAL:-reboot-$SITE-$(date -u +%Y%m%dT%H%M%SZ).journal}
read -r -a extra <<<"${DMCTL_ARGS:-}"

case $SITE in
  *"'"*|*'\'*) echo "SITE must not contain quotes or backslashes" >&2; exit 2 ;;
esac
query="SELECT deviceId FROM devices WHERE tags.site = '$SITE'"

# First show what would happen: the count, a sample and the estimated time.
"$DMCTL" invoke reboot "${extra[@]}" --query "$query" --dry-run >&2

# Then run it. Results stream to stdout as JSON lines; the summary goes to stderr.
exec "$DMCTL" invoke reboot "${extra[@]}" --query "$query" \
  --waves "$WAVES" --wave-pause "$WAVE_PAUSE" --max-failures "$MAX_FAILURES" \
  --journal "$JOURNAL" --yes -o jsonl
