// registry.js — Registry.get (and Registry.getModule, Registry.list) with
// Microsoft's azure-iothub SDK.
//
// Env: IOTHUB_CONNECTION_STRING (HostName without a port), DEVICE_ID,
//      optional MODULE_ID, SCRIPT_TIMEOUT_MS (default 60000).
// Prints {"ok":true,"device":{...},"listed":N} (with MODULE_ID: "module")
// or a failure.
'use strict';

const { Registry } = require('azure-iothub');
const lib = require('./lib');

lib.watchdog(lib.envInt('SCRIPT_TIMEOUT_MS', 60000));
const registry = Registry.fromConnectionString(lib.env('IOTHUB_CONNECTION_STRING'));
const deviceId = lib.env('DEVICE_ID');
const moduleId = process.env.MODULE_ID || '';

const main = async () => {
  if (moduleId) {
    const res = await registry.getModule(deviceId, moduleId);
    lib.emit({ ok: true, module: res.responseBody });
  } else {
    const res = await registry.get(deviceId);
    const list = await registry.list();
    lib.emit({ ok: true, device: res.responseBody, listed: list.responseBody.length });
  }
  process.exit(0);
};
main().catch((err) => lib.fail(err, { deviceId }));
