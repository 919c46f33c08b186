// query.js — Registry.createQuery paged with nextAsTwin (Microsoft's azure-iothub SDK).
//
// Env: IOTHUB_CONNECTION_STRING (HostName without a port),
//      QUERY (default "SELECT * FROM devices"), PAGE_SIZE (default 100),
//      MAX_PAGES (safety stop, default 10000), SCRIPT_TIMEOUT_MS (default 120000).
// Prints {"ok":true,"count":N,"pages":P,"pageSizes":[...],"continuationTokens":T,
//         "distinctIds":D,"firstId":...,"lastId":...,"allTwins":bool}.
'use strict';

const { Registry } = require('azure-iothub');
const lib = require('./lib');

lib.watchdog(lib.envInt('SCRIPT_TIMEOUT_MS', 120000));
const registry = Registry.fromConnectionString(lib.env('IOTHUB_CONNECTION_STRING'));
const sql = lib.env('QUERY', 'SELECT * FROM devices');
const pageSize = lib.envInt('PAGE_SIZE', 100);
const maxPages = lib.envInt('MAX_PAGES', 10000);

const query = registry.createQuery(sql, pageSize);
const ids = [];
const pageSizes = [];
let tokens = 0;
let allTwins = true;

function page() {
  query.nextAsTwin((err, twins) => {
    if (err) lib.fail(err, { pages: pageSizes.length, count: ids.length });
    const items = twins || [];
    pageSizes.push(items.length);
    for (const t of items) {
      if (!t || t.constructor.name !== 'Twin') allTwins = false;
      ids.push(t && t.deviceId);
    }
    if (query.continuationToken) tokens++;
    if (query.hasMoreResults && pageSizes.length < maxPages) {
      setImmediate(page);
      return;
    }
    lib.emit({
      ok: !query.hasMoreResults,
      count: ids.length,
      pages: pageSizes.length,
      pageSizes,
      continuationTokens: tokens,
      distinctIds: new Set(ids).size,
      firstId: ids[0],
      lastId: ids[ids.length - 1],
      allTwins,
      hasMoreResults: query.hasMoreResults,
    });
    process.exit(query.hasMoreResults ? 1 : 0);
  });
}
page();
