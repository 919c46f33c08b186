// device.js — a device built on Microsoft's device SDK (azure-iot-device +
// azure-iot-device-mqtt, unmodified) that stays connected until stdin closes.
//
// Env: DEVICE_CONNECTION_STRING (from hubsim's ready line: HostName is the hub,
//      GatewayHostName the MQTT port), REPORTED (JSON object patched into the
//      reported properties after connecting), SCRIPT_TIMEOUT_MS (default 180000),
//      TRANSPORT ("mqtt", default, or "ws" for MQTT over WebSocket),
//      WS_PORT (with TRANSPORT=ws: the SDK always dials port 443, so its public
//      mqtt.webSocketAgent option gets an https.Agent that dials WS_PORT instead;
//      host name, SNI and certificate checks are unchanged).
//      DEVICE_CERT_FILE and DEVICE_KEY_FILE (optional): the PEM client
//      certificate and key of an X.509 device (connection string with
//      x509=true), given to the SDK with client.setOptions({ cert, key }) as
//      Microsoft's simple_sample_device_x509.js does. The SDK then ignores
//      GatewayHostName and dials HostName on port 8883: preload
//      redirect8883.js (HUBSIM_MQTT_PORT) to reach hubsim's MQTT port.
//      Trust comes from NODE_EXTRA_CA_CERTS (hubsim's CA).
//
// Methods it registers with client.onDeviceMethod:
//   echo   200 {"method":"echo","received":<request payload>,"deviceId":...}
//   fail   500 {"error":"failing on purpose"}
//   hang   never answers (the hub must give up with 504101)
//   twin   reads the twin again (client.getTwin), then 200 {"reportedVersion":N}
//   reboot 200 "Reboot started", then reports iothubDM.reboot.startedRebootTime
//          and stays connected, as Microsoft's dmpatterns_reboot_device.js
//          sample does (its reboot is simulated)
//
// Prints one JSON object per line on stdout:
//   {"event":"ready","deviceId":...,"twin":{"desired":{...},"reported":{...}},"reported":<patch>}
//     once connected, handlers registered, the twin read and REPORTED accepted;
//   {"event":"method","name":...,"payload":...} for every method request;
//   {"event":"desired","patch":{...}} for every desired-properties change;
//   {"event":"error",...} for SDK errors; {"event":"closed"} when stdin ends
//   and the client is closed (exit 0). On a failure before "ready" it prints
//   {"ok":false,"error":{...}} and exits 1.
'use strict';

const { Client } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const fs = require('fs');
const https = require('https');
const lib = require('../service/lib');

lib.watchdog(lib.envInt('SCRIPT_TIMEOUT_MS', 180000));
const cs = lib.env('DEVICE_CONNECTION_STRING');
const reported = lib.envJSON('REPORTED', { conformance: true });
const deviceId = (/(?:^|;)DeviceId=([^;]+)/i.exec(cs) || [])[1];

const transport = lib.env('TRANSPORT', 'mqtt');
if (transport !== 'mqtt' && transport !== 'ws') lib.fail(new Error(`TRANSPORT must be mqtt or ws, got ${transport}`));
const client = Client.fromConnectionString(cs, transport === 'ws' ? MqttWs : Mqtt);
if (transport === 'ws') {
  const port = lib.envInt('WS_PORT');
  const agent = new https.Agent();
  const createConnection = agent.createConnection.bind(agent);
  agent.createConnection = (options, cb) => createConnection(Object.assign({}, options, { port }), cb);
  client.setOptions({ mqtt: { webSocketAgent: agent } });
}
const certFile = process.env.DEVICE_CERT_FILE;
if (certFile) {
  client.setOptions({
    cert: fs.readFileSync(certFile, 'utf-8').toString(),
    key: fs.readFileSync(lib.env('DEVICE_KEY_FILE'), 'utf-8').toString(),
  });
}
client.on('error', (err) => lib.emit({ event: 'error', error: lib.describeError(err) }));
client.on('disconnect', () => lib.emit({ event: 'disconnect' }));

function sent(name) {
  return (err) => {
    if (err) lib.emit({ event: 'error', method: name, error: lib.describeError(err) });
  };
}

async function main() {
  await client.open();
  client.onDeviceMethod('echo', (req, res) => {
    lib.emit({ event: 'method', name: req.methodName, payload: req.payload === undefined ? null : req.payload });
    res.send(200, { method: req.methodName, received: req.payload === undefined ? null : req.payload, deviceId }, sent('echo'));
  });
  client.onDeviceMethod('fail', (req, res) => {
    lib.emit({ event: 'method', name: req.methodName, payload: req.payload === undefined ? null : req.payload });
    res.send(500, { error: 'failing on purpose' }, sent('fail'));
  });
  client.onDeviceMethod('hang', (req) => {
    lib.emit({ event: 'method', name: req.methodName, payload: req.payload === undefined ? null : req.payload });
    // Never answer.
  });

  client.onDeviceMethod('twin', (req, res) => {
    lib.emit({ event: 'method', name: req.methodName, payload: req.payload === undefined ? null : req.payload });
    client.getTwin((err, t) => {
      if (err) return res.send(500, { error: lib.describeError(err) }, sent('twin'));
      res.send(200, { reportedVersion: t.properties.reported.$version }, sent('twin'));
    });
  });
  client.onDeviceMethod('reboot', (req, res) => {
    lib.emit({ event: 'method', name: req.methodName, payload: req.payload === undefined ? null : req.payload });
    res.send(200, 'Reboot started', sent('reboot'));
    client.getTwin((err, t) => {
      if (err) return lib.emit({ event: 'error', method: 'reboot', error: lib.describeError(err) });
      t.properties.reported.update({ iothubDM: { reboot: { startedRebootTime: new Date().toISOString() } } }, sent('reboot'));
    });
  });

  const twin = await client.getTwin();
  twin.on('properties.desired', (delta) => lib.emit({ event: 'desired', patch: delta }));
  const before = JSON.parse(JSON.stringify(twin.properties));
  await new Promise((resolve, reject) => {
    twin.properties.reported.update(reported, (err) => (err ? reject(err) : resolve()));
  });
  lib.emit({ event: 'ready', deviceId, transport, twin: { desired: before.desired, reported: before.reported }, reported });
}

main().catch((err) => lib.fail(err, { deviceId }));

process.stdin.resume();
process.stdin.on('end', () => {
  client.close((err) => {
    lib.emit(err ? { event: 'closed', error: lib.describeError(err) } : { event: 'closed' });
    process.exit(0);
  });
});
