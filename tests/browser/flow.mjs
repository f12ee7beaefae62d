// The install flow in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Run by tests/browser/run.py, which starts the demo (nginx +
// spawn-fcgi + the fake Slack) and checks the database and the logs after.
//
// Environment: BASE_URL (http://localhost:PORT, or https://localhost:PORT),
// SHOT_DIR (screenshots), APP_NAME (the demo's SLACK_APP_NAME, if any),
// HTTPS_SPKI (the https demo's key: base64 SHA-256 of its
// SubjectPublicKeyInfo, the one certificate this browser then accepts),
// ONLY_SUCCESS=1 (the first flow alone; screenshots named https-*.png).
// Prints "ok - …" / "FAIL - …" lines; exit status 1 when one failed.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const base = process.env.BASE_URL;
const shotDir = process.env.SHOT_DIR;
if (!base || !shotDir) {
  console.log('FAIL - browser: BASE_URL and SHOT_DIR must be set');
  process.exit(1);
}
const COOKIE = 'slack-app-oauth-state';
const appName = process.env.APP_NAME || '';
const spki = process.env.HTTPS_SPKI || '';
const onlySuccess = process.env.ONLY_SUCCESS === '1';
const shot = (name) => path.join(shotDir, (onlySuccess ? 'https-' : '') + name);
let failed = 0;

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function step(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
    return true;
  } catch (e) {
    console.log(`FAIL - ${name}: ${String(e.message || e).split('\n')[0]}`);
    failed++;
    return false;
  }
}

async function h1(page) {
  return (await page.locator('h1').first().innerText()).trim();
}

async function stateCookie(context) {
  return (await context.cookies(base)).find((c) => c.name === COOKIE);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'slack-oauth-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
      // The demo's self-made certificate, and no other, is accepted: as
      // a person does once in the warning page, for this profile only.
      ...(spki ? [`--ignore-certificate-errors-spki-list=${spki}`] : [])],
    viewport: { width: 720, height: 400 },
    timeout: 30000,
  });
} catch (e) {
  console.log(`FAIL - browser: cannot start /usr/bin/chromium: ${String(e.message).split('\n')[0]}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

// Nothing leaves the machine: the only hosts are the demo and the fake
// Slack. (The pages' "Add to Slack" image lives on platform.slack-edge.com;
// offline, it shows its alt text.)
const external = new Set();
await context.route('**/*', (route) => {
  const u = new URL(route.request().url());
  if (u.hostname === 'localhost' || u.hostname === '127.0.0.1') return route.continue();
  external.add(u.origin);
  return route.abort();
});
// Every code and state the browser carried, for the scan across the suite
// (tests/secrets_scan.py): appended to $SECRETS_FILE at the end.
const seen = new Map();
context.on('request', (r) => {
  const u = new URL(r.url());
  for (const k of ['code', 'state']) {
    const v = u.searchParams.get(k);
    if (v && v.length >= 8) seen.set(v, k);
  }
});
// Status of every response from the demo, by path.
const statuses = [];
context.on('response', (r) => {
  const u = new URL(r.url());
  if (u.origin === base) statuses.push([u.pathname, r.status()]);
});
const lastStatus = (p) => {
  const s = statuses.filter(([q]) => q === p);
  return s.length ? s[s.length - 1][1] : null;
};

async function finish() {
  if (external.size) console.log(`# blocked requests to ${[...external].join(', ')}`);
  if (process.env.SECRETS_FILE) {
    fs.appendFileSync(process.env.SECRETS_FILE, [...seen].map(([value, kind]) =>
      JSON.stringify({ suite: 'browser', kind, value }) + '\n').join(''), { mode: 0o600 });
  }
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.exit(failed ? 1 : 0);
}

const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(15000);
let redirectUrl = null;

const approved = await step('install page, "Add to Slack", approve: success page names the workspace', async () => {
  await page.goto(base + '/slack/install');
  check(lastStatus('/slack/install') === 200, `install page: status ${lastStatus('/slack/install')}`);
  const want = `Add ${appName || 'this app'} to Slack`;
  check(await h1(page) === want, `install page heading: ${await h1(page)}`);
  const c = await stateCookie(context);
  check(c, 'no state cookie after the install page');
  check(c.secure && c.httpOnly && c.sameSite === 'Lax',
    `state cookie attributes: secure=${c.secure} httpOnly=${c.httpOnly} sameSite=${c.sameSite}`);
  await page.screenshot({ path: shot('install.png') });

  await page.getByRole('link', { name: 'Add to Slack' }).click();
  await page.waitForURL(/\/oauth\/v2\/authorize\?/);
  const body = await page.locator('body').innerText();
  check(/local stand-in/.test(body), 'the fake authorize page does not say it is a stand-in');
  await page.screenshot({ path: shot('fake-authorize.png') });

  await page.locator('#allow').click();
  await page.waitForURL((u) => u.pathname === '/slack/oauth_redirect');
  await page.waitForLoadState('load');
  redirectUrl = page.url();
  check(lastStatus('/slack/oauth_redirect') === 200,
    `redirect: status ${lastStatus('/slack/oauth_redirect')} ("${await h1(page)}")`);
  check(await h1(page) === 'Installation complete', `success heading: ${await h1(page)}`);
  const text = await page.locator('main').innerText();
  check(text.includes('Example Team'), 'the success page does not name the workspace "Example Team"');
  if (appName) {
    check(text.includes(`${appName} is installed in the Example Team workspace`),
      `the success page does not say "${appName} is installed in …"`);
  }
  check(!(await stateCookie(context)), 'the state cookie was not cleared');
  await page.screenshot({ path: shot('success.png') });
});

if (onlySuccess) await finish();

await step('back to the authorize page, "Allow" again: "expired or already used"', async () => {
  check(approved, 'needs the approved install');
  await page.goBack();
  await page.waitForURL(/\/oauth\/v2\/authorize\?/);
  await page.locator('#allow').click();
  await page.waitForURL((u) => u.pathname === '/slack/oauth_redirect');
  await page.waitForLoadState('load');
  check(lastStatus('/slack/oauth_redirect') === 400, `status ${lastStatus('/slack/oauth_redirect')}`);
  check(await h1(page) === 'This link has expired or was already used', `heading: ${await h1(page)}`);
});

await step('the redirect URL replayed: "expired or already used"', async () => {
  check(redirectUrl, 'needs the approved install');
  await page.goto(redirectUrl);
  check(lastStatus('/slack/oauth_redirect') === 400, `status ${lastStatus('/slack/oauth_redirect')}`);
  check(await h1(page) === 'This link has expired or was already used', `heading: ${await h1(page)}`);
  const link = page.getByRole('link', { name: /start again/i });
  check(await link.count() === 1, 'no "start again" link');
  await page.screenshot({ path: path.join(shotDir, 'expired.png') });
});

await step('cancel on the authorize page: "Installation cancelled"', async () => {
  await page.goto(base + '/slack/install');
  await page.getByRole('link', { name: 'Add to Slack' }).click();
  await page.waitForURL(/\/oauth\/v2\/authorize\?/);
  await page.locator('#cancel').click();
  await page.waitForURL((u) => u.pathname === '/slack/oauth_redirect');
  await page.waitForLoadState('load');
  check(lastStatus('/slack/oauth_redirect') === 200, `status ${lastStatus('/slack/oauth_redirect')}`);
  check(await h1(page) === 'Installation cancelled', `heading: ${await h1(page)}`);
  check(!(await stateCookie(context)), 'the state cookie was not cleared');
  await page.screenshot({ path: path.join(shotDir, 'cancelled.png') });
});

await step('install page on a phone-sized screen: no horizontal scrolling', async () => {
  await page.setViewportSize({ width: 360, height: 640 });
  await page.goto(base + '/slack/install');
  const [sw, cw] = await page.evaluate(() => [document.documentElement.scrollWidth,
    document.documentElement.clientWidth]);
  check(sw <= cw, `page is ${sw}px wide in a ${cw}px viewport`);
  await page.screenshot({ path: path.join(shotDir, 'install-phone.png') });
});

await finish();
