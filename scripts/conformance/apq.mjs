// Automatic persisted queries through the real Apollo Client link
// (`PersistedQueryLink` from @apollo/client/link/persisted-queries, the class that
// `createPersistedQueryLink` builds) with node's crypto for SHA-256, against a
// running gateway:
//
//   URL=http://127.0.0.1:8000/graphql node apq.mjs
//
// Every request the link sends is recorded (through the HttpLink's `fetch`), so the
// check covers the protocol, not only the final data:
//   1. POST: a new query goes out as the hash alone, the gateway answers
//      PERSISTED_QUERY_NOT_FOUND, the link sends the document with the hash (POST),
//      and the data comes back;
//   2. a second client (empty cache) sends the same query as the hash alone, once,
//      and gets the same data;
//   3. GET (`useGETForHashedQueries`): a registered query is one short GET without the
//      document; a new one misses over GET, registers over POST, then is one GET.
// Exits 1 on any difference.

import { createHash } from 'node:crypto';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';

const url = process.env.URL ?? 'http://127.0.0.1:8000/graphql';
const sha256 = (text) => createHash('sha256').update(text).digest('hex');

let failures = 0;
function check(ok, what, detail) {
  console.log(`${ok ? 'ok    ' : 'FAILED'} ${what}`);
  if (!ok) {
    failures += 1;
    if (detail !== undefined) console.log(`       ${JSON.stringify(detail)}`);
  }
}

/// A client whose every HTTP request is recorded in `sent`.
function client({ useGET = false } = {}) {
  const sent = [];
  const fetchRecorded = async (input, init = {}) => {
    const response = await fetch(input, init);
    const text = await response.clone().text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: recorded as null
    }
    sent.push({
      method: (init.method ?? 'GET').toUpperCase(),
      url: String(input),
      body: init.body ? JSON.parse(init.body) : null,
      status: response.status,
      cacheControl: response.headers.get('cache-control'),
      answer: body,
    });
    return response;
  };
  const link = ApolloLink.from([
    new PersistedQueryLink({ sha256, useGETForHashedQueries: useGET }),
    new HttpLink({ uri: url, fetch: fetchRecorded }),
  ]);
  return { apollo: new ApolloClient({ link, cache: new InMemoryCache() }), sent };
}

const codeOf = (entry) => entry?.answer?.errors?.[0]?.extensions?.code;
const hasQuery = (entry) =>
  entry.method === 'POST' ? typeof entry.body?.query === 'string' : new URL(entry.url).searchParams.has('query');

// A query the gateway has not seen in this run (the alias makes it unique).
const tag = `t${Date.now().toString(36)}`;
const query = gql`
  query ApqCheck($id: ID!) {
    ${tag}: user(id: $id) {
      id
      firstName
      actions(first: 3) {
        totalCount
        nodes {
          type
          page {
            title
          }
        }
      }
    }
  }
`;

try {
  // 1. POST: miss, then register.
  const first = client();
  const r1 = await first.apollo.query({ query, variables: { id: '1' }, fetchPolicy: 'network-only' });
  check(r1.data?.[tag]?.id === '1', 'the first query returns its data', r1);
  check(first.sent.length === 2, 'the first query took two requests (hash, then document)', first.sent.map((s) => s.method));
  const [miss, register] = first.sent;
  check(miss && !hasQuery(miss) && miss.body?.extensions?.persistedQuery?.version === 1,
    'the first request carried the hash alone', miss?.body);
  check(codeOf(miss) === 'PERSISTED_QUERY_NOT_FOUND' && miss.answer?.errors?.[0]?.message === 'PersistedQueryNotFound',
    'the gateway answered PERSISTED_QUERY_NOT_FOUND / PersistedQueryNotFound', miss?.answer);
  check(miss && !('data' in (miss.answer ?? {})), 'the miss had no data', miss?.answer);
  check(register && register.method === 'POST' && hasQuery(register) &&
    sha256(register.body.query) === register.body.extensions?.persistedQuery?.sha256Hash,
    'the retry sent the document with its hash over POST', register?.body);

  // 2. Another client, empty cache: the hash alone, once.
  const second = client();
  const r2 = await second.apollo.query({ query, variables: { id: '1' }, fetchPolicy: 'network-only' });
  check(JSON.stringify(r2.data) === JSON.stringify(r1.data), 'a second client gets the same data', r2);
  check(second.sent.length === 1 && !hasQuery(second.sent[0]) && second.sent[0].status === 200,
    'a second client sent one request, the hash alone', second.sent.map((s) => [s.method, s.status, hasQuery(s)]));

  // 3. GET for hashed queries.
  const third = client({ useGET: true });
  const r3 = await third.apollo.query({ query, variables: { id: '2' }, fetchPolicy: 'network-only' });
  check(r3.data?.[tag]?.id === '2', 'GET by hash returns data for other variables', r3);
  const get = third.sent[0];
  check(third.sent.length === 1 && get.method === 'GET' && !hasQuery(get),
    'a registered query is one GET without the document', third.sent.map((s) => [s.method, hasQuery(s)]));
  // Short: hash, variables and the link's own extensions, no document (its text
  // would be `register.body.query`, URL-encoded).
  check(get && get.url.length < 512 && !get.url.includes('firstName'),
    `the GET URL is short and holds no document (${get?.url.length} characters; the document alone is ${encodeURIComponent(register?.body?.query ?? '').length})`, get?.url);

  const fresh = gql`
    query ApqGet${tag}($id: ID!) {
      page(id: $id) {
        id
        title
      }
    }
  `;
  const fourth = client({ useGET: true });
  const r4 = await fourth.apollo.query({ query: fresh, variables: { id: '1' }, fetchPolicy: 'network-only' });
  check(r4.data?.page?.id === '1', 'a new query over GET returns its data', r4);
  check(fourth.sent.length === 2 && fourth.sent[0].method === 'GET' && codeOf(fourth.sent[0]) === 'PERSISTED_QUERY_NOT_FOUND'
    && fourth.sent[1].method === 'POST' && hasQuery(fourth.sent[1]),
    'a new query over GET: miss over GET, register over POST', fourth.sent.map((s) => [s.method, s.status, codeOf(s)]));
  check(/no-store/.test(fourth.sent[0]?.cacheControl ?? ''),
    'the miss over GET says Cache-Control: no-store (a CDN must not keep it)', fourth.sent[0]?.cacheControl);
  const hit = fourth.sent.length === 2 ? await (async () => {
    const again = client({ useGET: true });
    await again.apollo.query({ query: fresh, variables: { id: '1' }, fetchPolicy: 'network-only' });
    return again.sent;
  })() : [];
  check(hit.length === 1 && hit[0].method === 'GET' && !hasQuery(hit[0]),
    'after that, the new query is one GET without the document', hit.map((s) => [s.method, hasQuery(s)]));
} catch (err) {
  failures += 1;
  console.log(`FAILED the Apollo Client flow threw: ${err?.stack ?? err}`);
}

console.log(failures === 0 ? 'APQ through Apollo Client: all checks passed' : `APQ through Apollo Client: ${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
