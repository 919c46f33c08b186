// jobs.js — JobClient.scheduleDeviceMethod and getJob with Microsoft's azure-iothub SDK.
//
// Env: IOTHUB_CONNECTION_STRING (HostName without a port), JOB_ID,
//      QUERY_CONDITION, METHOD_NAME, METHOD_PAYLOAD (JSON, optional),
//      RESPONSE_TIMEOUT (seconds, optional), POLL_MS (default 200),
//      SCRIPT_TIMEOUT_MS (default 60000).
//
// scheduleDeviceMethod is called without a start time or a maximum execution
// time, as most users call it: the SDK then sends "startTime": null, no
// maxExecutionTimeInSeconds, and (always) no connectTimeoutInSeconds. The
// script polls getJob until the job is completed, failed or cancelled, reads
// the per-device results with Registry.createQuery over devices.jobs, and
// lists jobs with JobClient.createQuery.
//
// Prints {"ok":true,"created":{...JobResponse...},"createdHttpStatus":200,
//         "final":{...},"polls":N,"statuses":[...],"deviceJobs":[...],
//         "listedJobIds":[...]} or a failure.
'use strict';

const { JobClient, Registry } = require('azure-iothub');
const lib = require('./lib');

lib.watchdog(lib.envInt('SCRIPT_TIMEOUT_MS', 60000));
const cs = lib.env('IOTHUB_CONNECTION_STRING');
const jobId = lib.env('JOB_ID');
const condition = lib.env('QUERY_CONDITION');
const params = { methodName: lib.env('METHOD_NAME') };
const payload = lib.envJSON('METHOD_PAYLOAD', undefined);
if (payload !== undefined) params.payload = payload;
if (process.env.RESPONSE_TIMEOUT) params.responseTimeoutInSeconds = lib.envInt('RESPONSE_TIMEOUT');
const pollMs = lib.envInt('POLL_MS', 200);

const jobClient = JobClient.fromConnectionString(cs);
const registry = Registry.fromConnectionString(cs);
const terminal = new Set(['completed', 'failed', 'cancelled']);

function nextPage(query) {
  return new Promise((resolve, reject) => {
    query.next((err, results) => (err ? reject(err) : resolve(results || [])));
  });
}

async function readAll(query) {
  const out = [];
  do {
    out.push(...(await nextPage(query)));
  } while (query.hasMoreResults);
  return out;
}

async function main() {
  // Promise form: no start time, no max execution time.
  const created = await jobClient.scheduleDeviceMethod(jobId, condition, params);
  const statuses = [created.jobStatus.status];
  let final = created.jobStatus;
  let polls = 0;
  while (!terminal.has(final.status)) {
    await new Promise((r) => setTimeout(r, pollMs));
    const got = await jobClient.getJob(jobId);
    final = got.jobStatus;
    polls++;
    if (statuses[statuses.length - 1] !== final.status) statuses.push(final.status);
  }
  const deviceJobs = await readAll(registry.createQuery(
    "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '" + jobId + "'", 100));
  const listed = await readAll(jobClient.createQuery('scheduleDeviceMethod', undefined, 100));
  lib.emit({
    ok: true,
    created: created.jobStatus,
    createdHttpStatus: created.response && created.response.statusCode,
    final,
    polls,
    statuses,
    deviceJobs,
    listedJobIds: listed.map((j) => j.jobId),
  });
  process.exit(0);
}

main().catch((err) => lib.fail(err, { jobId }));
