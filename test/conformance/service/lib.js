// lib.js — tiny shared helpers for the conformance scripts (no dependencies).
//
// Every script reads its inputs from environment variables, prints exactly
// one JSON line on stdout and exits 0 on success; on failure it prints
// {"ok":false,"error":{...}} and exits 1. Secrets (connection strings, keys,
// tokens) are never printed.
'use strict';

/** Returns the value of the environment variable name, or exits 2 naming it. */
function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback;
    usage(`environment variable ${name} is required`);
  }
  return v;
}

/** Parses an integer environment variable, or exits 2 naming it. */
function envInt(name, fallback) {
  const raw = env(name, fallback === undefined ? undefined : String(fallback));
  const n = Number.parseInt(raw, 10);
  if (!Number.isInteger(n) || String(n) !== String(raw).trim()) {
    usage(`environment variable ${name} must be an integer, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** Parses a JSON environment variable, or exits 2 naming it. */
function envJSON(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    return JSON.parse(raw);
  } catch (e) {
    usage(`environment variable ${name} must be JSON: ${e.message}`);
  }
}

function usage(msg) {
  emit({ ok: false, error: { name: 'UsageError', message: msg } });
  process.exit(2);
}

/** Prints obj as one JSON line on stdout. */
function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const secretPattern = /(SharedAccessKey=|SharedAccessSignature |sig=|Bearer )[^;&\s"']+/gi;

/** Masks anything that looks like a secret in s. */
function redact(s) {
  return typeof s === 'string' ? s.replace(secretPattern, '$1REDACTED') : s;
}

/** Describes an SDK error: its class name, message and the HTTP details the SDK attached. */
function describeError(err) {
  const out = { name: (err && err.name) || 'Error', constructor: err && err.constructor && err.constructor.name, message: redact(String((err && err.message) || err)) };
  if (err && err.response) {
    out.statusCode = err.response.statusCode;
    const h = err.response.headers || {};
    out.contentType = h['content-type'];
    out.iothubErrorCode = h['iothub-errorcode'];
    out.requestId = h['x-ms-request-id'];
  }
  if (err && err.responseBody !== undefined) out.responseBody = redact(String(err.responseBody));
  if (err && err.code !== undefined) out.code = err.code;
  return out;
}

/** Prints the error as {"ok":false,...} and exits 1. */
function fail(err, extra) {
  emit(Object.assign({ ok: false }, extra || {}, { error: describeError(err) }));
  process.exit(1);
}

/** Exits 3 with a JSON failure if the script has not finished after ms. */
function watchdog(ms) {
  const t = setTimeout(() => {
    emit({ ok: false, error: { name: 'WatchdogTimeout', message: `script did not finish within ${ms} ms` } });
    process.exit(3);
  }, ms);
  t.unref();
}

module.exports = { env, envInt, envJSON, emit, fail, describeError, redact, watchdog };
