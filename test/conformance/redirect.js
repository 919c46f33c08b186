// redirect.js — what redirect443.js and redirect8883.js share: the hub host
// names to redirect, the port to send them to, and the rewrite of one set of
// connection options that keeps the identity the client asked for.
'use strict';

const net = require('net');
const tls = require('tls');

/**
 * Returns rewrite(options): for a connection to a hub host on fromPort, a
 * copy of options that dials 127.0.0.1:$portEnv, with the original host's
 * SNI (IP literals get none, RFC 6066) and certificate check (Node would
 * otherwise check servername || host, i.e. 127.0.0.1 for IP literals); for
 * any other connection, null. Exits 2 naming portEnv when it is not a port.
 * HUBSIM_HOST (optional) lists the hub host names, comma-separated; default
 * "127.0.0.1,localhost".
 */
function redirector(name, portEnv, fromPort) {
  const port = Number.parseInt(process.env[portEnv] || '', 10);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write(`${name}: ${portEnv} must be a TCP port, got ${JSON.stringify(process.env[portEnv])}\n`);
    process.exit(2);
  }
  const hosts = new Set(
    (process.env.HUBSIM_HOST || '127.0.0.1,localhost')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h !== ''),
  );
  const debug = process.env[`${name.toUpperCase()}_DEBUG`];
  return (options) => {
    const host = String(options.host || options.hostname || '').toLowerCase();
    if (!hosts.has(host) || Number(options.port || fromPort) !== fromPort) return null;
    const redirected = Object.assign({}, options, { host: '127.0.0.1', port });
    delete redirected.hostname;
    if (!redirected.servername && !net.isIP(host)) {
      redirected.servername = host;
    }
    const check = options.checkServerIdentity || tls.checkServerIdentity;
    redirected.checkServerIdentity = (_name, cert) => check(host, cert);
    if (debug) {
      process.stderr.write(`${name}: ${host}:${fromPort} -> 127.0.0.1:${port} (servername ${redirected.servername || '(none)'})\n`);
    }
    return redirected;
  };
}

module.exports = { redirector };
