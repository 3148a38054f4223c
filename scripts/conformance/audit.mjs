// The GraphQL-over-HTTP audit of graphql-http (`auditServer`) against a running gateway.
//
//   URL=http://127.0.0.1:8000/graphql node audit.mjs
//
// Prints every audit with its result, then a summary line. Exits 1 when any audit is
// not `ok`: the gateway is meant to pass all of them, MUST, SHOULD and MAY alike.
// The gateway must run in development mode (introspection on; `serve --sandbox`
// does), since the audits query `__type(name:)`.

import { auditServer } from 'graphql-http';

const url = process.env.URL ?? 'http://127.0.0.1:8000/graphql';
console.log(`graphql-http auditServer against ${url}`);

let results;
try {
  results = await auditServer({ url });
} catch (err) {
  console.error(`the audit could not run: ${err?.stack ?? err}`);
  process.exit(2);
}

const label = { ok: 'ok    ', notice: 'NOTICE', warn: 'WARN  ', error: 'ERROR ' };
for (const r of results) {
  console.log(`${label[r.status] ?? r.status} ${r.id.padEnd(4)} ${r.name}`);
  if (r.status !== 'ok') {
    console.log(`         reason: ${r.reason}`);
    if (r.response) {
      let body = '';
      try {
        body = await r.response.clone().text();
      } catch {
        // the body was already read by the audit
      }
      const ct = r.response.headers.get('content-type') ?? '(none)';
      console.log(`         response: HTTP ${r.response.status}, content-type ${ct}`);
      if (body) console.log(`         body: ${body.slice(0, 300)}`);
    }
  }
}

const count = (s) => results.filter((r) => r.status === s).length;
const notOk = results.length - count('ok');
console.log(
  `audit summary: ${count('ok')}/${results.length} ok, ` +
    `${count('error')} error (MUST), ${count('warn')} warn (SHOULD), ${count('notice')} notice (MAY)`,
);
if (results.length === 0) {
  console.log('audit FAILED: no audits ran');
  process.exit(1);
}
if (notOk > 0) {
  console.log(`audit FAILED: ${notOk} audit(s) not ok`);
  process.exit(1);
}
console.log('audit passed: every audit ok');
