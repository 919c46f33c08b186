#!/usr/bin/env bash
# A rollout in two steps: write a plan that can be reviewed (the targets of a
# ring, each with its twin's version, and every option of the run), then
# apply exactly that plan. A device whose twin changed between the two steps
# is reported "drifted" and not invoked.
#
#   RING=canary ./examples/plan-and-apply.sh plan canary.plan     # sends nothing
#   git add canary.plan && git commit ...                          # review it
#   ./examples/plan-and-apply.sh apply canary.plan > results.jsonl
#
# apply journals the run in PLAN.journal; running apply again after an
# interruption resumes it (targets with a result, drifted ones included, are
# not invoked again).
#
# Needs dmctl on PATH (or DMCTL=/path/to/dmctl) and a credential it can use
# (IOTHUB_CONNECTION_STRING, a profile, or --hub/--auth in DMCTL_ARGS).
# METHOD (default reboot), PAYLOAD (JSON, default none), WAVES (default
# 1,50%,100%), ABORT_IF (default offline>10%: stop once more than a tenth
# of the finished devices were offline) and GATE (a shell command run
# between waves; default: every result of the wave succeeded) shape the
# plan: a safe rollout, reviewed before it runs.
#
# Exit code: dmctl's (0 all succeeded, 4 some did not or drifted, 5 stopped
# by an abort criterion or the gate, 2 a bad plan).
set -euo pipefail
DMCTL=${DMCTL:-dmctl}
read -r -a extra <<<"${DMCTL_ARGS:-}"
step=${1:?usage: plan-and-apply.sh plan|apply PLAN}
plan=${2:?usage: plan-and-apply.sh plan|apply PLAN}

case $step in
plan)
  RING=${RING:?set RING to the tags.ring value of the devices to plan for}
  case $RING in
    *"'"*|*'\'*) echo "RING must not contain quotes or backslashes" >&2; exit 2 ;;
  esac
  payload=()
  if [[ -n ${PAYLOAD:-} ]]; then payload=(--payload "$PAYLOAD"); fi
  exec "$DMCTL" invoke "${METHOD:-reboot}" "${extra[@]}" "${payload[@]}" \
    --query "SELECT deviceId FROM devices WHERE tags.ring = '$RING'" \
    --waves "${WAVES:-1,50%,100%}" --abort-if "${ABORT_IF:-offline>10%}" \
    --gate "${GATE:-test \"\$(grep -vc '\"outcome\":\"succeeded\"' \"\$DMCTL_WAVE_RESULTS\")\" -eq 0}" \
    --plan "$plan"
  ;;
apply)
  journal=$plan.journal
  if [[ -e $journal ]]; then
    exec "$DMCTL" apply "$plan" "${extra[@]}" --resume "$journal" --yes -o jsonl
  fi
  exec "$DMCTL" apply "$plan" "${extra[@]}" --journal "$journal" --yes -o jsonl
  ;;
*)
  echo "usage: plan-and-apply.sh plan|apply PLAN" >&2
  exit 2
  ;;
esac
