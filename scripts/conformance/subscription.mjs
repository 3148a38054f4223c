// Live page progress with a real GraphQL-over-WebSocket client: `graphql-ws`'s
// createClient (the `graphql-transport-ws` protocol; `ws` as the WebSocket of Node),
// against a running `actionkit-graphql serve --sandbox`.
//
//   BASE_URL=http://127.0.0.1:8000 SANDBOX_URL=http://127.0.0.1:PORT DEMO_KEY=akg_… node subscription.mjs
//
// DEMO_KEY is the demo `submit` key the gateway prints at start in development mode
// (limited to the demo page); run.sh reads it from the log.
//
// 1. A key that is not valid: the gateway closes the connection with 4403.
// 2. Subscribes to `pageProgress` of the demo page with the demo key (in
//    connection_init's payload): the first value equals the sandbox's own count.
// 3. Submits an action (`submitAction` over HTTP, the same key): the count pushed next
//    is one more, well before the next poll would see it.
// 4. Two more subscribers of the same page get the same value.

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { report } from './report.mjs';

const base = (process.env.BASE_URL ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
const sandbox = (process.env.SANDBOX_URL ?? '').replace(/\/$/, '').replace(/\/rest\/v1$/, '');
const KEY = process.env.DEMO_KEY ?? '';
const PAGE = process.env.PETITION_PAGE ?? 'save-the-bees';
const wsUrl = base.replace(/^http/, 'ws') + '/graphql';
const TIMEOUT = 15_000;

const { fail, check, finish } = report('subscription test');

if (!sandbox || !KEY) {
  console.log('SANDBOX_URL and DEMO_KEY are required (run.sh reads both from the gateway log)');
  process.exit(1);
}

const PROGRESS = `subscription Progress($page: String!) {
  pageProgress(page: $page) { pageName current actions goal goalType percent asOf }
}`;

function client(key, onClosed) {
  return createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${key}` },
    retryAttempts: 0,
    lazy: true,
    on: onClosed ? { closed: onClosed } : undefined,
  });
}

function withTimeout(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT)),
  ]);
}

async function sandboxCount() {
  const res = await fetch(`${sandbox}/progress/?page=${encodeURIComponent(PAGE)}`);
  const body = await res.json();
  return body.total.actions;
}

console.log(`live progress with graphql-ws against ${wsUrl} (page ${PAGE})`);

// 1. A key that is not valid.
{
  let closedWith = null;
  const bad = client('not-a-key', (event) => {
    closedWith = event?.code ?? null;
  });
  const outcome = await withTimeout(
    new Promise((resolve) => {
      bad.subscribe({ query: PROGRESS, variables: { page: PAGE } }, {
        next: () => resolve('next'),
        error: (e) => resolve(e),
        complete: () => resolve('complete'),
      });
    }),
    'the refusal of a bad key',
  ).catch((e) => e);
  check(closedWith === 4403, `a bad key is refused with close code 4403 (got ${closedWith}; ${outcome?.reason ?? outcome})`);
  await bad.dispose();
}

// 2–4. The demo key: subscribe, submit, see the count go up.
const gql = client(KEY);
try {
  const iterator = gql.iterate({ query: PROGRESS, variables: { page: PAGE } });
  const first = await withTimeout(iterator.next(), 'the first value');
  const p0 = first.value?.data?.pageProgress;
  check(!!p0, `the first value arrives: ${JSON.stringify(first.value)}`);
  const own = await sandboxCount();
  check(p0?.actions === own, `it equals the sandbox's own count (${p0?.actions} vs ${own})`);

  const others = [client(KEY), client(KEY)];
  const otherFirsts = await Promise.all(
    others.map((c) => withTimeout(c.iterate({ query: PROGRESS, variables: { page: PAGE } }).next(), 'another subscriber')),
  );
  check(
    otherFirsts.every((r) => r.value?.data?.pageProgress?.actions === p0?.actions),
    'two more subscribers of the page see the same count',
  );

  const email = `live-${Date.now()}-${process.pid}@example.org`;
  const sent = Date.now();
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json',
      authorization: `Bearer ${KEY}`,
    },
    body: JSON.stringify({
      query: 'mutation S($input: SubmitActionInput!) { submitAction(input: $input) { status fieldErrors { field message } } }',
      variables: { input: { page: PAGE, email, firstName: 'Live', lastName: 'Count', zip: '02139' } },
    }),
  });
  const body = await res.json();
  const status = body?.data?.submitAction?.status;
  check(status === 'PROCESSED', `the submission is processed (${JSON.stringify(body)})`);

  const pushed = await withTimeout(iterator.next(), 'the pushed count');
  const p1 = pushed.value?.data?.pageProgress;
  const took = Date.now() - sent;
  check(p1?.actions === (p0?.actions ?? NaN) + 1, `the pushed count went up by one (${p0?.actions} → ${p1?.actions}) in ${took} ms`);
  check(p1?.current >= p0?.current, `current moved too (${p0?.current} → ${p1?.current})`);
  check((await sandboxCount()) === p1?.actions, 'the sandbox agrees');
  await iterator.return?.();
  await Promise.all(others.map((c) => c.dispose()));
} catch (err) {
  fail(`the subscription test stopped: ${err?.stack ?? err}`);
} finally {
  await gql.dispose();
}

finish();
