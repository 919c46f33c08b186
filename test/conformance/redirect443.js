// redirect443.js — preload with `node -r ./redirect443.js script.js`.
//
// Microsoft's Node service SDK (azure-iothub) passes the connection string's
// HostName verbatim to https.request and always dials port 443; it cannot be
// given a port (see shared/docs/node-sdks.md). This module wraps
// https.Agent.prototype.createConnection so that TLS connections to the hub
// host on port 443 go to 127.0.0.1:$HUBSIM_PORT instead. Everything else is
// untouched: the TLS handshake still uses the original host name (servername,
// and the certificate identity check), so the certificate must be valid for
// that host and trusted through NODE_EXTRA_CA_CERTS. The SDK itself is not
// modified.
//
// Environment:
//   HUBSIM_PORT  (required) the port hubsim's HTTPS listener is on
//   HUBSIM_HOST  (optional) comma-separated hub host names to redirect;
//                default "127.0.0.1,localhost"
'use strict';

const https = require('https');
const { redirector } = require('./redirect');

const rewrite = redirector('redirect443', 'HUBSIM_PORT', 443);
const original = https.Agent.prototype.createConnection;

https.Agent.prototype.createConnection = function createConnection(options, ...rest) {
  return original.call(this, rewrite(options) || options, ...rest);
};
