// Package help holds the text of `dmctl invoke --help`: the long
// description and the examples (kept apart from the command's code, which
// is at its package size limit).
package help

// Long is invoke's help text.
const Long = `
			Invoke a direct method on devices (or on a module of each device) and
			report what each device answered.

			Targets: --device (repeatable), --devices-file FILE or - for stdin (one
			device id, device/module, or a JSON line with "deviceId" per line, such
			as the -o jsonl output of an earlier run; repeatable, the files combine),
			and --query with one IoT Hub query (SELECT deviceId FROM devices WHERE
			..., or FROM devices.modules; at most 8 KB; join conditions with OR
			rather than giving --query twice), read page by page. They can be
			combined; duplicates are removed (a note on stderr counts them). Every
			id is checked before anything is sent. No targets at all (an empty
			file, a query that matches nothing) is not an error: dmctl says so and
			exits 0, with or without --via job.

			Every flag that takes a value refuses an empty one (an unset shell
			variable) and, unless it is repeatable, a second one: both exit 2 with
			nothing sent.

			The device's answer is data: the hub's HTTP 200 carries the status the
			device returned, and --ok-status (default: any 2xx) decides what counts
			as success.

			Fleets: --concurrency auto (the default) keeps as many calls in flight as
			the pace needs for the devices' answer times (pace x their 90th
			percentile x 1.25, at least 32), up to --max-concurrency (16384) and
			what the open-file limit allows; --concurrency N keeps exactly N. Calls
			are paced by --rate N/s, or by --rate auto, which starts at the hub's published
			direct-method throttle for --tier/--units (40 calls/s per S1 unit for
			payloads up to 4 KB) and adapts to 429s: it raises the pace by 2.5%
			of that each second without a 429 and cuts it by 30% on one (without
			--tier it starts at 40 calls/s and doubles each second until the first
			429). Resends wait for the pace like first calls. Without --rate the
			calls in flight are sized for the --tier throttle, or for one S1 unit's
			40 calls/s. The summary ends with a pace line naming what held the pace
			(the hub's throttle, its or this machine's capacity, the calls in
			flight, the pace asked, or the devices' answer times), with a hint when
			the run fell short of the pace asked. -o jsonl streams
			results as they complete; table, wide and json print once at the end,
			sorted. A summary (outcomes, device statuses, retries, latency
			percentiles, calls/s) and, on a terminal, a progress bar go to stderr.
			-o name prints every target of the run (device or device/module, one per
			line, sorted), whatever its outcome.

			Rollouts: --waves 1,10%,50%,100% (cumulative) or --batch-size N run the
			targets in waves, waiting for every answer, and --wave-pause between
			them. --max-failures N stops as soon as more than N targets failed;
			--max-failures P% stops at the end of a wave when more than P% of the
			targets finished so far failed. --abort-if 'CLASS>N' or 'CLASS>P%'
			(repeatable) stops on one kind of outcome (offline, timeout, failed,
			error, unknown, waitFailed, waitTimeout, ..., or any), judged on every
			result, a percentage once --min-sample targets (default 10) finished.
			--gate CMD runs a shell command after each wave (after the last too
			with --gate-after-last) with DMCTL_WAVE, DMCTL_WAVES,
			DMCTL_WAVE_RESULTS and DMCTL_RESULTS (JSON-lines files of results); a
			non-zero exit or --gate-timeout (default 10m) stops the run. Either way
			the untouched targets are reported skipped and dmctl exits 5.

			Interruptions: --journal FILE records each target before its call is
			sent and its result after. Ctrl-C (or SIGTERM) stops starting calls and
			gives calls in flight --grace to finish; a second Ctrl-C stops at once
			(calls still in flight are reported unknown). Every target is accounted
			for: the ones never started (the rest of a --query included, which is
			still read) are reported skipped in the output, the journal and the
			summary; then dmctl exits 130. A closed stdout (dmctl ... | head) stops
			the run the same way, with the summary on stderr. dmctl invoke --resume
			FILE runs the targets the journal has no final result for, with the
			journal's method, targets and options (give --payload again if the run
			had one: it is not stored); target flags cannot be added to a resumed
			run (exit 2). Its summary gives this run's calls and the whole
			rollout's totals; dmctl journal show FILE prints the final result of
			every target. A target whose call was in flight when dmctl was killed is
			reported "unknown" and not invoked again, unless --idempotent.

			Plans: --plan FILE sends nothing: it writes the targets (a query read
			now), each twin's version and etag, the method, the payload and the
			run's options to a JSON plan (mode 0600) that dmctl apply FILE runs
			exactly, skipping as drifted any target whose twin changed meanwhile.

			Safety: --dry-run lists the targets, their count and the estimated
			duration, and sends nothing. On a terminal, a run over more than one
			target asks for confirmation (--yes skips it; Ctrl-C at the question
			exits 130 with nothing sent); nothing ever prompts when stdin is not a
			terminal.

			Direct methods are not idempotent: a method that timed out (504101) or a
			connection lost after sending may already have run, so dmctl resends
			only what cannot have reached the device (throttling, 503, connection
			refused) unless you say --idempotent. Offline devices (404103) are
			retried only with --wait-online.

			Outcomes: a reboot or a firmware update is not done when the method
			returns 200. --wait reboot waits, after the method succeeded, until the
			device reports iothubDM.reboot.lastReboot (or startedRebootTime, then a
			disconnection or 30s still connected, as by a simulated reboot) at or
			after the call and is connected again; --wait
			firmware until iothubDM.firmwareUpdate.status is applyComplete (or "apply
			firmware image complete"), ending as waitFailed on downloadFailed,
			applyFailed, "Download image failed" or "Apply image failed" (any case).
			--wait-until COND (repeatable, all must hold) and --fail-if COND
			(repeatable, any fails) test other twin properties: PATH == VALUE,
			PATH != VALUE, PATH in (A, B) or PATH not in (A, B), e.g.
			"properties.reported.fw.version == '2.1'"; strings compare
			case-insensitively, an absent property matches nothing. A target not done
			within --wait-timeout (default 10m) is waitTimeout. Either way dmctl exits
			4; each result carries waitValue, the last values seen. Fleets are polled
			with batched twin queries (deviceId IN [...]) paced to the query
			throttle of --tier/--units (default one S1 unit: 20 queries a minute);
			a single target is read with GET /twins. Under a wait, a lost answer
			(504101, or the connection lost after the request was sent) is settled
			from the twin, read for as long as --timeout: a report since the call
			means the method started (the wait goes on, "resolved": "started"); a
			device connected with nothing reported did not run it (resent without
			--idempotent, "resolved": "notRun"); anything else ends unknown.
			--until-online DUR parks targets whose device is offline (404103),
			watches their connectionState with batched, paced twin queries and
			calls each as soon as it is connected (a flapping device once, never
			twice); a target still offline DUR after it was parked ends offline.

			Jobs: --via job runs the fan-out as an IoT Hub scheduleDeviceMethod job
			instead (the hub calls the devices at its jobs pace, S1: 10 devices/s),
			then prints the per-device results like a direct run, with the same exit
			codes. --query becomes the job's queryCondition (its WHERE clause) and
			--device/--devices-file an IN list (at most 8 KB of query); modules,
			pacing, waves, journals and resend flags are refused. Ctrl-C stops
			waiting, not the job. See docs/jobs.md for when to use which.

			--payload takes JSON text, @FILE, or - for stdin (at most 128 KB); with
			no --payload the device gets null. --timeout is how long the hub waits
			for the device's answer (5s..300s); --connect-timeout how long it waits
			for a disconnected device to connect (0..300s). A bare number means
			seconds.
		`

// Examples are invoke's examples.
const Examples = `
			$ dmctl invoke reboot --device thermostat-17
			$ dmctl invoke firmwareUpdate --device thermostat-17 --payload '{"fwPackageUri":"https://example.com/fw-2.1.bin"}'
			$ dmctl invoke reboot --device gw-1 --module telemetry -o json
			$ dmctl invoke reboot --query "SELECT deviceId FROM devices WHERE tags.site = 'plant-a'" --rate auto --tier S1 --units 2 -o jsonl
			$ dmctl invoke firmwareUpdate --devices-file fleet.txt --payload @fw.json --waves 1,10%,50%,100% --max-failures 2% --journal fw.journal
			$ dmctl invoke reboot --query "SELECT deviceId FROM devices WHERE tags.site = 'plant-a'" --abort-if 'offline>10%' --abort-if 'timeout>5' --min-sample 50
			$ dmctl invoke --resume fw.journal --payload @fw.json
			$ dmctl invoke reboot --devices-file fleet.txt -o jsonl | jq -c 'select(.outcome != "succeeded")' | dmctl invoke reboot --devices-file -
			$ dmctl invoke reboot --query 'SELECT deviceId FROM devices' --dry-run --rate 40/s
			$ dmctl invoke reboot --query "SELECT deviceId FROM devices WHERE tags.site = 'plant-a'" --wait reboot --wait-timeout 5m
			$ dmctl invoke firmwareUpdate --devices-file fleet.txt --payload @fw.json --wait firmware -o jsonl
			$ dmctl invoke firmwareUpdate --device gw-1 --payload @fw.json --wait-until "properties.reported.iothubDM.firmwareUpdate.status == applyComplete" --fail-if "properties.reported.iothubDM.firmwareUpdate.status in (downloadFailed, applyFailed)"
			$ dmctl journal show fw.journal -o jsonl
			$ dmctl invoke firmwareUpdate --query "SELECT deviceId FROM devices WHERE tags.ring = 'canary'" --payload @fw.json --waves 1,50%,100% --plan canary.plan
			$ dmctl invoke reboot --query "SELECT deviceId FROM devices WHERE tags.ring = 'canary'" --via job
		`
