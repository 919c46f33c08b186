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
const net = require('net');
const tls = require('tls');

const port = Number.parseInt(process.env.HUBSIM_PORT || '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write(`redirect443: HUBSIM_PORT must be a TCP port, got ${JSON.stringify(process.env.HUBSIM_PORT)}\n`);
  process.exit(2);
}
const hosts = new Set(
  (process.env.HUBSIM_HOST || '127.0.0.1,localhost')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== ''),
);

const original = https.Agent.prototype.createConnection;

https.Agent.prototype.createConnection = function createConnection(options, ...rest) {
  const host = String(options.host || options.hostname || '').toLowerCase();
  const p = Number(options.port || 443);
  if (hosts.has(host) && p === 443) {
    const redirected = Object.assign({}, options, { host: '127.0.0.1', port });
    // Keep the identity the client asked for. SNI: the original name (IP
    // literals get none, RFC 6066). Certificate check: against the original
    // host, not the address we dial (Node would otherwise check
    // servername || host, i.e. 127.0.0.1 for IP literals).
    if (!redirected.servername && !net.isIP(host)) {
      redirected.servername = host;
    }
    const check = options.checkServerIdentity || tls.checkServerIdentity;
    redirected.checkServerIdentity = (_name, cert) => check(host, cert);
    if (process.env.REDIRECT443_DEBUG) {
      process.stderr.write(`redirect443: ${host}:443 -> 127.0.0.1:${port} (servername ${redirected.servername || '(none)'})\n`);
    }
    return original.call(this, redirected, ...rest);
  }
  return original.call(this, options, ...rest);
};
