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

const tls = require('tls');
const { redirector } = require('./redirect');

const rewrite = redirector('redirect8883', 'HUBSIM_MQTT_PORT', 8883);
const original = tls.connect;

tls.connect = function connect(...args) {
  const options = args[0];
  if (options && typeof options === 'object') {
    args[0] = rewrite(options) || options;
  }
  return original.apply(this, args);
};
