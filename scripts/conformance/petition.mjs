// The example petition page in a real browser: headless Debian Chromium driven by
// playwright-core, against a running `actionkit-graphql serve --sandbox` (development
// mode, which serves /examples/petition with a demo `submit` key).
//
//   BASE_URL=http://127.0.0.1:8000 SANDBOX_URL=http://127.0.0.1:PORT node petition.mjs
//
// SANDBOX_URL is the embedded sandbox's address, which the gateway prints at start
// ("embedded sandbox at http://…/rest/v1/"); run.sh reads it from the log.
//
// 1. GET /examples/petition: a Content-Security-Policy without 'unsafe-inline', no
//    script or stylesheet from another host.
// 2. In Chromium: fills the form with an invalid email and submits: the error shows
//    next to the email input (and only there), nothing reaches the sandbox.
// 3. Corrects the email, submits: the confirmation shows; the sandbox has exactly one
//    new action, by this member, on the demo page.
// 4. The thermometer: it shows the sandbox's own count for the page once the live
//    subscription (WebSocket, graphql-transport-ws) is up, and moves by one after the
//    signature, pushed by the gateway.
// 5. A visitor whose link carries a member's AKID (`?akid=`) is greeted by first name.
// 6. Saves a screenshot to artifacts/petition.png (ARTIFACTS_DIR to change the folder).
// Fails on any console error (CSP violations included), uncaught page error, failed
// request, or request to a host other than the gateway's.

import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { executablePath, externalReferences, gatewayOnly, launch, shows, watchedPage } from './chromium.mjs';
import { report } from './report.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const base = (process.env.BASE_URL ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
const sandbox = (process.env.SANDBOX_URL ?? '').replace(/\/$/, '').replace(/\/rest\/v1$/, '');
const artifacts = resolve(process.env.ARTIFACTS_DIR ?? join(here, '..', '..', 'artifacts'));
const screenshot = join(artifacts, 'petition.png');
const PAGE = process.env.PETITION_PAGE ?? 'save-the-bees';
const SANDBOX_AUTH = 'Basic ' + Buffer.from(process.env.SANDBOX_CREDENTIALS ?? 'sandbox:sandbox').toString('base64');
const TIMEOUT = 30_000;

const { fail, pass, check, finish } = report('petition test');

if (!sandbox) {
  console.log('SANDBOX_URL is required (the embedded sandbox address the gateway prints at start)');
  process.exit(1);
}

const isGateway = gatewayOnly(base);

// What the sandbox holds, asked over its REST API with its credential.
async function rest(path) {
  const res = await fetch(`${sandbox}${path}`, { headers: { authorization: SANDBOX_AUTH } });
  if (!res.ok) throw new Error(`sandbox ${path}: HTTP ${res.status}`);
  return res.json();
}
async function postedActions() {
  const stats = await fetch(`${sandbox}/__sandbox/stats`).then((r) => r.json());
  return stats?.by_route?.['POST /rest/v1/action/'] ?? 0;
}
async function sandboxCount() {
  const body = await fetch(`${sandbox}/progress/?page=${encodeURIComponent(PAGE)}`).then((r) => r.json());
  return body.total.actions;
}
async function meterCount(page) {
  return Number(await page.getAttribute('#meter-text', 'data-count'));
}
async function actionsOf(email) {
  const users = await rest(`/rest/v1/user/?email=${encodeURIComponent(email)}`);
  const user = users.objects?.[0];
  if (!user) return [];
  const actions = await rest(`/rest/v1/action/?user=${user.id}&page__name=${encodeURIComponent(PAGE)}&_limit=100`);
  return actions.objects ?? [];
}

console.log(`petition page browser test against ${base} (sandbox ${sandbox}) with ${executablePath}`);

// 1. The page as served.
{
  const res = await fetch(`${base}/examples/petition`);
  check(res.status === 200, `GET /examples/petition answers 200 (got ${res.status})`);
  const csp = res.headers.get('content-security-policy') ?? '';
  check(/script-src 'sha256-/.test(csp) && !/unsafe-inline/.test(csp), `a Content-Security-Policy with hashes, no 'unsafe-inline' (${csp || 'none'})`);
  const html = await res.text();
  const external = externalReferences(html);
  check(external.length === 0, `no script or stylesheet from another host (${external.join(', ') || 'none'})`);
}

const email = `petition-${Date.now()}-${process.pid}@example.org`;
const { context, close } = await launch({ width: 900, height: 1000 });

try {
  const page = await watchedPage(context, { timeout: TIMEOUT, fail, isGateway, failStatus: 400 });

  await page.goto(`${base}/examples/petition`, { waitUntil: 'load' });
  await page.locator('form#petition button[type="submit"]').waitFor({ state: 'visible' });
  pass('the petition form rendered');

  // The thermometer, live.
  const live = await page
    .waitForSelector('#meter[data-live="true"]', { timeout: TIMEOUT })
    .then(() => true)
    .catch(() => false);
  check(live, 'the thermometer is live (the pageProgress subscription answered)');
  const count0 = await meterCount(page);
  check(count0 === (await sandboxCount()), `the thermometer shows the sandbox's count (${count0})`);
  check(/ of 1,000 signatures$/.test(await page.locator('#meter-text').innerText()), `it names the goal: ${JSON.stringify(await page.locator('#meter-text').innerText())}`);

  // 2. An invalid email: the error shows next to the email input.
  const before = await postedActions();
  await page.fill('#email', 'ada.lovelace-at-example.org');
  await page.fill('#firstName', 'Ada');
  await page.fill('#lastName', 'Lovelace');
  await page.fill('#zip', '02139');
  await page.click('form#petition button[type="submit"]');
  const emailError = page.locator('#error-email');
  const shown = await page
    .waitForFunction(() => document.getElementById('error-email')?.textContent.trim() !== '', null, { timeout: TIMEOUT })
    .then(() => true)
    .catch(() => false);
  check(shown, `the email error shows inline: ${JSON.stringify(shown ? await emailError.innerText() : '')}`);
  check((await page.getAttribute('#email', 'aria-invalid')) === 'true', 'the email input is marked invalid');
  const others = await page.evaluate(() =>
    ['firstName', 'lastName', 'zip', 'phone'].map((n) => document.getElementById('error-' + n).textContent).join(''),
  );
  check(others === '', `no error next to the other inputs (${JSON.stringify(others)})`);
  check(await page.locator('#confirmation').isHidden(), 'no confirmation yet');
  check((await postedActions()) === before, 'the refused signature did not reach the sandbox');
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, 'petition-error.png'), fullPage: true });

  // 3. Corrected: the confirmation, and one new action in the sandbox.
  await page.fill('#email', email);
  await page.click('form#petition button[type="submit"]');
  const confirmed = await shows(page.locator('#confirmation'));
  check(confirmed, 'the confirmation shows after a correct submission');
  const status = await page.getAttribute('#confirmation', 'data-status');
  const text = confirmed ? await page.locator('#confirmation').innerText() : '';
  check(/Thank you, Ada!/.test(text), `the confirmation thanks the signer: ${JSON.stringify(text)}`);
  check(status === 'PROCESSED' || status === 'QUEUED', `submitAction answered ${status}`);
  check(await page.locator('form#petition').isHidden(), 'the form is replaced by the confirmation');
  // A QUEUED signature is delivered in the background: wait for it.
  let actions = [];
  const deadline = Date.now() + TIMEOUT;
  do {
    actions = await actionsOf(email);
    if (actions.length > 0) break;
    await new Promise((r) => setTimeout(r, 250));
  } while (Date.now() < deadline);
  check(actions.length === 1, `exactly one new action by ${email} on ${PAGE} in the sandbox (found ${actions.length})`);
  const after = await postedActions();
  check(after - before === 1, `the sandbox processed one action (POST /rest/v1/action/: ${before} → ${after})`);

  // The thermometer moved by one, pushed over the subscription.
  const moved = await page
    .waitForFunction((n) => Number(document.getElementById('meter-text')?.getAttribute('data-count')) === n, count0 + 1, { timeout: TIMEOUT })
    .then(() => true)
    .catch(() => false);
  check(moved, `the thermometer moved: ${count0} → ${await meterCount(page)}`);

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`       screenshot: ${screenshot}`);

  // A returning member, recognised from the AKID in the link.
  const member = await rest('/rest/v1/user/1/');
  const greeted = await watchedPage(context, { timeout: TIMEOUT, fail, isGateway, failStatus: 400 });
  await greeted.goto(`${base}/examples/petition?akid=${encodeURIComponent(member.token)}`, { waitUntil: 'load' });
  const greeting = await greeted
    .waitForSelector('#greeting[data-recognized="true"]', { timeout: TIMEOUT })
    .then((el) => el.innerText())
    .catch(() => '');
  check(greeting === `Welcome back, ${member.first_name}!`, `a recognised member is greeted: ${JSON.stringify(greeting)}`);
  check(!(await greeted.content()).includes(member.email), 'the page holds no email of the member');
  await greeted.screenshot({ path: join(artifacts, 'petition-member.png'), fullPage: true });
} catch (err) {
  fail(`the petition test stopped: ${err?.stack ?? err}`);
} finally {
  await close();
}

finish();
