// invoke.js — Client.invokeDeviceMethod with Microsoft's azure-iothub SDK.
//
// Env: IOTHUB_CONNECTION_STRING (service policy; HostName without a port),
//      DEVICE_ID, optional MODULE_ID, METHOD_NAME, METHOD_PAYLOAD (JSON,
//      default null), RESPONSE_TIMEOUT (seconds, default 30),
//      CONNECT_TIMEOUT (seconds, default 0), SCRIPT_TIMEOUT_MS (default 60000).
// Prints {"ok":true,"deviceId":...,"result":{"status":...,"payload":...},
//         "httpStatus":200,"contentType":...}
// or {"ok":false,"error":{"name","message","statusCode","responseBody",...}}.
'use strict';

const { Client } = require('azure-iothub');
const lib = require('./lib');

lib.watchdog(lib.envInt('SCRIPT_TIMEOUT_MS', 60000));
const cs = lib.env('IOTHUB_CONNECTION_STRING');
const deviceId = lib.env('DEVICE_ID');
const moduleId = process.env.MODULE_ID || '';
const params = {
  methodName: lib.env('METHOD_NAME'),
  payload: lib.envJSON('METHOD_PAYLOAD', null),
  responseTimeoutInSeconds: lib.envInt('RESPONSE_TIMEOUT', 30),
  connectTimeoutInSeconds: lib.envInt('CONNECT_TIMEOUT', 0),
};

const client = Client.fromConnectionString(cs);
const done = (err, result, response) => {
  if (err) lib.fail(err, { deviceId, moduleId: moduleId || undefined });
  lib.emit({
    ok: true,
    deviceId,
    moduleId: moduleId || undefined,
    result,
    httpStatus: response && response.statusCode,
    contentType: response && response.headers && response.headers['content-type'],
  });
  process.exit(0);
};
if (moduleId) {
  client.invokeDeviceMethod(deviceId, moduleId, params, done);
} else {
  client.invokeDeviceMethod(deviceId, params, done);
}
