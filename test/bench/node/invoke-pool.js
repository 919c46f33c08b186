// invoke-pool.js — the Node service SDK (azure-iothub) invoking a direct
// method on a fleet with a promise pool: at most CONCURRENCY calls in
// flight, the next one started as soon as one finishes. The fleet
// benchmark (test/bench/fleetbench) runs it side by side with dmctl.
//
// Run with NODE_PATH=test/conformance/node_modules and
// `node -r test/conformance/redirect443.js` (the SDK always dials port 443).
//
// Env: IOTHUB_CONNECTION_STRING (service policy, HostName without a port),
//      IDS_FILE (one device id per line), METHOD_NAME, CONCURRENCY.
// Prints one JSON line: {"calls":N,"ok":N,"failed":N,"seconds":S,"callsPerSecond":R,"sdk":"azure-iothub@x"}.
'use strict';

const fs = require('fs');
const { Client } = require('azure-iothub');

const cs = process.env.IOTHUB_CONNECTION_STRING;
const ids = fs.readFileSync(process.env.IDS_FILE, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean);
const method = process.env.METHOD_NAME || 'ping';
const concurrency = Number.parseInt(process.env.CONCURRENCY || '64', 10);
const sdkVersion = require('azure-iothub/package.json').version;

const client = Client.fromConnectionString(cs);
const params = { methodName: method, payload: null, responseTimeoutInSeconds: 30, connectTimeoutInSeconds: 0 };

async function main() {
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError = '';
  const start = process.hrtime.bigint();
  async function worker() {
    while (next < ids.length) {
      const id = ids[next++];
      try {
        const res = await client.invokeDeviceMethod(id, params);
        if (res && res.result && res.result.status >= 200 && res.result.status < 300) ok++;
        else failed++;
      } catch (e) {
        failed++;
        if (!firstError) firstError = String((e && e.message) || e).replace(/(sig=|SharedAccessKey=)[^&;\s"']+/g, '$1REDACTED');
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  process.stdout.write(JSON.stringify({ calls: ids.length, ok, failed, seconds, callsPerSecond: ids.length / seconds, sdk: 'azure-iothub@' + sdkVersion, firstError: firstError || undefined }) + '\n');
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(String(e) + '\n');
  process.exit(1);
});
