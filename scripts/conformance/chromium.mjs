// What the browser checks share: Debian's Chromium started the way this machine needs
// (no sandbox as root, no background networking toward hosts it cannot reach), a page
// that fails the check on any console error, uncaught error, failed request, request
// to another host or error status, and the check that a page loads nothing from
// another host.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/// Starts Chromium in a fresh profile; `close()` stops it and removes the profile.
export async function launch(viewport) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'akgql-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport,
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

/// The first page of `context`, watched: `fail` is called for anything a user would
/// see go wrong, and for answers with a status of `failStatus` or more.
export async function watchedPage(context, { timeout, fail, isGateway, failStatus }) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on('console', (msg) => {
    if (msg.type() === 'error') fail(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => fail(`uncaught error in the page: ${err.message}`));
  page.on('request', (req) => {
    if (!isGateway(req.url())) fail(`request to another host: ${req.method()} ${req.url()}`);
  });
  page.on('requestfailed', (req) =>
    fail(`request failed: ${req.method()} ${req.url()} (${req.failure()?.errorText})`),
  );
  page.on('response', (res) => {
    if (res.status() >= failStatus) fail(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
  });
  return page;
}

/// Whether a URL the page asks for is the gateway at `base` (or inline: `data:`, `blob:`).
export function gatewayOnly(base) {
  const gatewayHost = new URL(base).host;
  return (u) => {
    try {
      const url = new URL(u);
      return url.host === gatewayHost || url.protocol === 'data:' || url.protocol === 'blob:';
    } catch {
      return false;
    }
  };
}

/// Whether `locator` becomes visible within the page's timeout (`false`, not a throw,
/// when it does not).
export function shows(locator) {
  return locator
    .waitFor({ state: 'visible' })
    .then(() => true)
    .catch(() => false);
}

/// The `src`/`href` addresses of `html` that point at another host.
export function externalReferences(html) {
  return [...html.matchAll(/(?:src|href)\s*=\s*["']([^"']+)["']/g)]
    .map((m) => m[1])
    .filter((u) => /^(https?:)?\/\//.test(u));
}
