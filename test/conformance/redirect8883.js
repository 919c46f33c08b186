// redirect8883.js — preload with `node -r ./redirect8883.js script.js` (or
// NODE_OPTIONS=--require=.../redirect8883.js).
//
// Microsoft's Node device SDK, given an X.509 connection string
// (`HostName=...;DeviceId=...;x509=true`), keeps only HostName and DeviceId
// (X509AuthenticationProvider): it ignores GatewayHostName and always dials
// mqtts://HostName, i.e. port 8883 (see shared/docs/node-sdks.md). This module
// wraps tls.connect so that connections to the hub host on port 8883 go to
// 127.0.0.1:$HUBSIM_MQTT_PORT instead. Everything else is untouched: the TLS
// handshake keeps the original host name (servername, and the certificate
// identity check), the client certificate and key the SDK passes are sent as
// they are, and trust still comes from NODE_EXTRA_CA_CERTS. The SDK itself is
// not modified.
//
// Environment:
//   HUBSIM_MQTT_PORT  (required) the port hubsim's MQTT listener is on
//   HUBSIM_HOST       (optional) comma-separated hub host names to redirect;
//                     default "127.0.0.1,localhost"
'use strict';

const net = require('net');
const tls = require('tls');

const port = Number.parseInt(process.env.HUBSIM_MQTT_PORT || '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write(`redirect8883: HUBSIM_MQTT_PORT must be a TCP port, got ${JSON.stringify(process.env.HUBSIM_MQTT_PORT)}\n`);
  process.exit(2);
}
const hosts = new Set(
  (process.env.HUBSIM_HOST || '127.0.0.1,localhost')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== ''),
);

const original = tls.connect;

tls.connect = function connect(...args) {
  const options = args[0];
  if (options && typeof options === 'object') {
    const host = String(options.host || options.hostname || '').toLowerCase();
    if (hosts.has(host) && Number(options.port) === 8883) {
      const redirected = Object.assign({}, options, { host: '127.0.0.1', port });
      delete redirected.hostname;
      // Keep the identity the client asked for (see redirect443.js).
      if (!redirected.servername && !net.isIP(host)) {
        redirected.servername = host;
      }
      const check = options.checkServerIdentity || tls.checkServerIdentity;
      redirected.checkServerIdentity = (_name, cert) => check(host, cert);
      if (process.env.REDIRECT8883_DEBUG) {
        process.stderr.write(`redirect8883: ${host}:8883 -> 127.0.0.1:${port}\n`);
      }
      args[0] = redirected;
    }
  }
  return original.apply(this, args);
};
