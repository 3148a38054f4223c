// GraphiQL in a real browser: headless Debian Chromium driven by playwright-core,
// against a running `actionkit-graphql serve --sandbox`.
//
//   BASE_URL=http://127.0.0.1:8000 node browser.mjs
//
// 1. GET / : a Content-Security-Policy header, no third-party script or stylesheet.
// 2. Opens / in Chromium, reads the pre-filled query from GraphiQL's editor, sends the
//    same query with POST /graphql from here, clicks GraphiQL's execute button and
//    checks that the result pane shows the same data (the demo user's email and
//    firstName among it).
// 3. Opens the docs explorer and checks that it lists the query root type (the name
//    introspection gives, `Query` in DESIGN.md), opens it and finds the field `user`.
// 4. Saves a screenshot to artifacts/graphiql.png (ARTIFACTS_DIR to change the folder).
// Fails on any console error (CSP violations included), uncaught page error, failed
// request, or request to a host other than the gateway's.
//
// CHROMIUM (default /usr/bin/chromium) names the browser; playwright never downloads one.

import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { executablePath, externalReferences, gatewayOnly, launch, shows, watchedPage } from './chromium.mjs';
import { report } from './report.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const base = (process.env.BASE_URL ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
const artifacts = resolve(process.env.ARTIFACTS_DIR ?? join(here, '..', '..', 'artifacts'));
const screenshot = join(artifacts, 'graphiql.png');
const TIMEOUT = 30_000;

const { fail, pass, check, finish } = report('browser test');

const isGateway = gatewayOnly(base);

console.log(`GraphiQL browser test against ${base} with ${executablePath}`);

// 1. The page as served.
{
  const res = await fetch(`${base}/`);
  check(res.status === 200, `GET / answers 200 (got ${res.status})`);
  const csp = res.headers.get('content-security-policy') ?? '';
  check(/default-src 'self'/.test(csp), `GET / sends a Content-Security-Policy (${csp || 'none'})`);
  const html = await res.text();
  const external = externalReferences(html);
  check(external.length === 0, `no script or stylesheet from another host (${external.join(', ') || 'none'})`);
}

// 2-4. In the browser.
const { context, close } = await launch({ width: 1440, height: 900 });

try {
  const page = await watchedPage(context, { timeout: TIMEOUT, fail, isGateway, failStatus: 500 });

  await page.goto(`${base}/`, { waitUntil: 'load' });
  const executeButton = page.locator('button.graphiql-execute-button');
  await executeButton.waitFor({ state: 'visible' });
  pass('GraphiQL rendered (execute button visible)');

  // The editors are CodeMirror 5 instances; their element carries the editor.
  const editorValue = (selector) =>
    page.evaluate((sel) => document.querySelector(sel)?.CodeMirror?.getValue() ?? null, selector);

  const query = await editorValue('.graphiql-query-editor .CodeMirror');
  check(typeof query === 'string' && /user\(id:/.test(query), 'the example query is pre-filled');

  const headersText = await editorValue('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
  console.log(`       headers editor: ${JSON.stringify(headersText)}`);
  let presetHeaders = null;
  try {
    presetHeaders = JSON.parse(headersText ?? '');
  } catch {
    // reported below
  }
  check(
    presetHeaders !== null && typeof presetHeaders === 'object' && 'Authorization' in presetHeaders,
    'the headers editor holds valid JSON with an Authorization slot',
  );

  // What the gateway answers for the same query, outside the browser.
  const direct = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query }),
  });
  const expected = await direct.json();
  check(direct.status === 200 && !expected.errors, `POST /graphql runs the example query (HTTP ${direct.status}${expected.errors ? `, errors ${JSON.stringify(expected.errors)}` : ''})`);
  const user = expected?.data?.user;
  check(
    user && typeof user.email === 'string' && user.email.includes('@') && user.firstName,
    `the demo user has an email and a first name (${user?.firstName} <${user?.email}>)`,
  );

  // Run it through GraphiQL's own UI.
  const graphqlResponses = [];
  const authorizationSent = [];
  page.on('response', async (res) => {
    if (new URL(res.url()).pathname !== '/graphql') return;
    graphqlResponses.push(res.status());
    const auth = (await res.request().allHeaders())['authorization'];
    if (auth !== undefined) authorizationSent.push(auth);
  });
  await executeButton.click();
  const resultText = await page
    .waitForFunction(
      () => {
        const v = document.querySelector('.result-window .CodeMirror')?.CodeMirror?.getValue();
        return v && v.trim().startsWith('{') ? v : false;
      },
      null,
      { timeout: TIMEOUT },
    )
    .then((h) => h.jsonValue())
    .catch(() => null);
  check(resultText !== null, 'clicking execute fills the result pane');
  let shown = null;
  try {
    shown = JSON.parse(resultText ?? '');
  } catch {
    fail(`the result pane does not hold JSON: ${String(resultText).slice(0, 200)}`);
  }
  if (shown) {
    check(!shown.errors, `the result has no errors${shown.errors ? `: ${JSON.stringify(shown.errors)}` : ''}`);
    check(
      isDeepStrictEqual(shown.data, expected.data),
      'the result pane shows the same data as POST /graphql',
    );
    check(
      Boolean(user) &&
        shown?.data?.user?.email === user.email &&
        shown?.data?.user?.firstName === user.firstName,
      `the result pane shows the demo user (${shown?.data?.user?.firstName} <${shown?.data?.user?.email}>)`,
    );
    const paneText = await page.locator('.result-window').innerText();
    check(paneText.includes(user?.email ?? '\u0000'), 'the email is visible in the result pane');
  }
  check(
    graphqlResponses.length > 0 && graphqlResponses.every((s) => s === 200),
    `the browser's POST /graphql answered 200 (${graphqlResponses.join(', ') || 'no request seen'})`,
  );

  check(
    authorizationSent.length === 0,
    `the untouched Authorization placeholder is not sent (${authorizationSent.length ? JSON.stringify(authorizationSent) : 'no Authorization header'})`,
  );

  // The docs explorer: it lists the query root type (named as introspection says).
  const rootName = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ __schema { queryType { name } } }' }),
  })
    .then((r) => r.json())
    .then((b) => b?.data?.__schema?.queryType?.name)
    .catch(() => undefined);
  check(typeof rootName === 'string', `introspection names the query root type (${rootName})`);
  if (rootName !== 'Query') console.log(`       note: the query root type is ${rootName}, DESIGN.md says Query`);
  await page.locator('button[aria-label="Show Documentation Explorer"]').click();
  const explorer = page.locator('.graphiql-doc-explorer');
  await explorer.waitFor({ state: 'visible' });
  // <div><span class="graphiql-doc-explorer-root-type">query</span>: <a …>Query</a></div>
  const queryRoot = explorer.locator(
    'xpath=//span[contains(@class, "graphiql-doc-explorer-root-type") and normalize-space() = "query"]' +
      '/following-sibling::a[1]',
  );
  const listed = await shows(queryRoot.first());
  const linkText = listed ? (await queryRoot.first().innerText()).trim() : '';
  check(listed && linkText === rootName, `the docs explorer lists the root type query: ${linkText || '(none)'}`);
  if (listed) {
    await queryRoot.first().click();
    const userField = explorer.locator('.graphiql-doc-explorer-field-name', { hasText: /^user$/ });
    const shownField = await shows(userField.first());
    check(shownField, `the docs for ${rootName} list the field user`);
    // Field arguments come from the second introspection step (see graphiql.rs).
    const argument = explorer.locator('.graphiql-doc-explorer-argument-name', { hasText: /^akid$/ });
    const shownArgument = await shows(argument.first());
    check(shownArgument, 'the docs list the arguments of user (akid)');
  }

  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: screenshot });
  console.log(`       screenshot: ${screenshot}`);
} catch (err) {
  fail(`the browser test stopped: ${err?.stack ?? err}`);
} finally {
  await close();
}

finish();
