// twin.js — Registry.getTwin with Microsoft's azure-iothub SDK.
//
// Env: IOTHUB_CONNECTION_STRING (HostName without a port), DEVICE_ID,
//      SCRIPT_TIMEOUT_MS (default 60000).
// Prints {"ok":true,"twin":{...the twin as the SDK exposes it...}} or a failure.
'use strict';

const { Registry } = require('azure-iothub');
const lib = require('./lib');

lib.watchdog(lib.envInt('SCRIPT_TIMEOUT_MS', 60000));
const registry = Registry.fromConnectionString(lib.env('IOTHUB_CONNECTION_STRING'));
const deviceId = lib.env('DEVICE_ID');

registry.getTwin(deviceId, (err, twin, response) => {
  if (err) lib.fail(err, { deviceId });
  // Twin.toJSON() drops the registry back-reference and keeps the wire fields.
  const doc = typeof twin.toJSON === 'function' ? twin.toJSON() : twin;
  lib.emit({
    ok: true,
    twin: doc,
    isTwin: twin && twin.constructor && twin.constructor.name === 'Twin',
    httpStatus: response && response.statusCode,
  });
  process.exit(0);
});
