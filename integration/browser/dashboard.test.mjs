// Real-browser test of the dashboard: Debian's chromium driven by playwright-core against
// `proxmox-monitor demo` (the real server, real MQTT over WebSocket, a simulated fleet).
//
// Run from anywhere: `node --test integration/browser/` (after `cargo build --workspace`).
// Needs /usr/bin/chromium (Debian package `chromium`; scripts/test installs it).
// Env: PROXMOX_MONITOR_BIN overrides the server binary (default target/debug/proxmox-monitor),
//      CHROMIUM overrides the browser (default /usr/bin/chromium).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.PROXMOX_MONITOR_BIN || path.join(ROOT, 'target', 'debug', 'proxmox-monitor');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const HOSTS = Array.from({ length: 12 }, (_, i) => `pve-${String(i + 1).padStart(2, '0')}`);

let demo; // { proc, url, password, dataDir, output }
let context;
let page; // the overview tab, kept open (and never reloaded) across the live checks
let userDataDir;
// Every Content-Security-Policy violation any tab reports: there must be none (#12).
const cspViolations = [];

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

/** Starts `proxmox-monitor demo --port 0` and waits (bounded) for its URL and password. */
function startDemo() {
  return new Promise((resolve, reject) => {
    if (!existsSync(BIN)) {
      reject(new Error(`${BIN} not found: run \`cargo build --workspace\` first`));
      return;
    }
    const proc = spawn(BIN, ['demo', '--port', '0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
    });
    const state = { proc, output: '', stderr: '', exited: null };
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`demo did not print its URL within 30 s; stdout:\n${state.output}\nstderr:\n${state.stderr}`));
    }, 30_000);
    // Never leave the server behind, even if this process ends without running `after`.
    process.on('exit', () => { if (!state.exited) proc.kill('SIGKILL'); });
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => { state.stderr = (state.stderr + d).slice(-20_000); });
    proc.stdout.on('data', (d) => {
      state.output += d;
      const url = state.output.match(/dashboard: (http:\/\/127\.0\.0\.1:\d+)\//);
      const pw = state.output.match(/password: +(\S+)/);
      const data = state.output.match(/data: +(.+?) \(deleted on exit\)/);
      if (url && pw && data && !state.url) {
        clearTimeout(timer);
        state.url = url[1];
        state.password = pw[1];
        state.dataDir = data[1];
        resolve(state);
      }
    });
    proc.on('exit', (code, signal) => {
      state.exited = { code, signal };
      clearTimeout(timer);
      if (!state.url) reject(new Error(`demo exited early (${code ?? signal}):\n${state.output}\n${state.stderr}`));
    });
  });
}

/** SIGTERM, then wait (bounded) for the exit; SIGKILL if it hangs. Returns the exit. */
function stopDemo(state, ms = 10_000) {
  return new Promise((resolve) => {
    if (state.exited) return resolve(state.exited);
    const timer = setTimeout(() => {
      state.proc.kill('SIGKILL');
      resolve({ code: null, signal: 'SIGKILL (hung after SIGTERM)' });
    }, ms);
    state.proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
    state.proc.kill('SIGTERM');
  });
}

/** Polls /health until it answers 200 (bounded): the demo prints its URL, then seeds its
 *  history before it serves, which takes a while in a debug build on a busy machine. */
async function waitHealthy(url, ms = 180_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5_000) });
      if (r.status === 200) return;
    } catch { /* not serving yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url}/health did not answer 200 within ${ms / 1000} s`);
}

before(async () => {
  demo = await startDemo();
  await waitHealthy(demo.url);
  console.log(`demo at ${demo.url} (data ${demo.dataDir}) serving after ${elapsed()}`);
  userDataDir = mkdtempSync(path.join(os.tmpdir(), 'pmon-chromium-'));
  // A fresh, empty profile each run (launchPersistentContext is how Playwright takes
  // --user-data-dir); the flags keep Chromium off the network it can't reach here.
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
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
    viewport: { width: 1400, height: 1000 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  context.on('console', (msg) => {
    if (/Content.Security.Policy/i.test(msg.text())) cspViolations.push(`${msg.page()?.url()}: ${msg.text()}`);
  });
  page = await context.newPage();
});

after(async () => {
  await context?.close().catch(() => {});
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  if (demo) {
    const exit = await stopDemo(demo);
    console.log(`demo stopped: ${JSON.stringify(exit)}; temp dir removed: ${!existsSync(demo.dataDir)}`);
  }
  console.log(`total ${elapsed()}`);
});

test('/ redirects to /login; a wrong password is refused; the right one lands on the overview', async () => {
  await page.goto(`${demo.url}/`);
  assert.equal(new URL(page.url()).pathname, '/login');

  // Each attempt is an argon2id verification, slow in a debug build on a busy machine.
  await page.fill('input[name=password]', 'not-the-password');
  await Promise.all([page.waitForEvent('load', { timeout: 30_000 }), page.click('button[type=submit]')]);
  await page.waitForSelector('#login-error');
  assert.equal((await page.textContent('#login-error')).trim(), 'Incorrect password.');
  assert.equal(new URL(page.url()).pathname, '/login');

  await page.fill('input[name=password]', demo.password);
  await Promise.all([page.waitForURL(`${demo.url}/`, { timeout: 30_000 }), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/');
});

test('the overview shows the 12 hosts and the live (SSE) indicator', async () => {
  // Hosts that have not reported yet are still cards; all twelve are registered up front.
  await page.waitForFunction(() => document.querySelectorAll('#cards .card').length === 12, null, { timeout: 10_000 });
  const ids = (await page.$$eval('.card', (cards) => cards.map((c) => c.id))).sort();
  assert.deepEqual(ids, HOSTS.map((h) => `card-${h}`));
  await page.waitForFunction(() => document.getElementById('live').textContent === 'live', null, { timeout: 10_000 });
});

test('a card updates live, without a reload', async () => {
  await page.evaluate(() => { window.__marker = 1; });
  const before = await page.textContent('#card-pve-01 .load');
  await page.waitForFunction(
    (old) => {
      const el = document.querySelector('#card-pve-01 .load');
      return el && el.textContent !== old;
    },
    before,
    { timeout: 15_000, polling: 200 },
  );
  const afterText = await page.textContent('#card-pve-01 .load');
  assert.notEqual(afterText, before);
  assert.match(afterText, /^\d+\.\d\d \/ \d+\.\d\d$/, `load should be two numbers once reported: ${afterText}`);
  assert.equal(await page.evaluate(() => window.__marker), 1, 'the page was reloaded');
});

test('pve-04 is critical: its pool is DEGRADED and the disk under it fails SMART', async () => {
  // The medium tier (pools) is sent every 5 s, the slow one (SMART) at start; wait for
  // them rather than assume they came.
  await page.waitForSelector('#card-pve-04[data-status=critical] .reasons', { timeout: 15_000 });
  await page.waitForFunction(() => /DEGRADED/.test(document.querySelector('#card-pve-04 .reasons')?.textContent || ''), null, { timeout: 15_000 });
  const reasons = await page.textContent('#card-pve-04 .reasons');
  assert.match(reasons, /DEGRADED/);
  assert.match(reasons, /SMART/i);
  assert.equal(await page.evaluate(() => window.__marker), 1, 'the page was reloaded');
});

test('pve-08 goes offline and comes back, observed live', async () => {
  // The demo's flaky agent is up 40 s, then down 20 s, from the demo's start.
  const t0 = Date.now();
  await page.waitForSelector('#card-pve-08[data-status=offline]', { timeout: 70_000 });
  const down = Date.now();
  console.log(`pve-08 offline after ${((down - t0) / 1000).toFixed(1)} s of waiting (${elapsed()} in)`);
  await page.waitForSelector('#card-pve-08:not([data-status=offline])', { timeout: 40_000 });
  const status = await page.getAttribute('#card-pve-08', 'data-status');
  console.log(`pve-08 back (${status}) after ${((Date.now() - down) / 1000).toFixed(1)} s offline`);
  assert.ok(['online', 'warning', 'critical'].includes(status), status);
  // The card pushed on reconnect can briefly say "no fast sample ... while connected" (the
  // last sample predates the outage) until the first new sample arrives; pve-08 is
  // otherwise healthy, so it settles to online.
  await page.waitForSelector('#card-pve-08[data-status=online]', { timeout: 15_000 });
  assert.equal(await page.evaluate(() => window.__marker), 1, 'the page was reloaded');
});

test('the page runs under a CSP without unsafe-inline: no inline code, the hashed stylesheet applies', async () => {
  const response = await context.request.get(`${demo.url}/`);
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(await page.locator('script:not([src])').count(), 0);
  assert.equal(await page.locator('[style]').count(), 0);
  const css = await page.getAttribute('link[rel=stylesheet]', 'href');
  assert.match(css, /^\/static\/app\.[0-9a-f]{16}\.css$/);
  // The stylesheet applied (the header is dark) and the script ran (the live indicator).
  const background = await page.evaluate(() => getComputedStyle(document.querySelector('header')).backgroundColor);
  assert.equal(background, 'rgb(29, 33, 37)');
  assert.equal(await page.textContent('#live'), 'live');
});

/** Saves a full-page screenshot as target/screenshots/NAME.png and returns its path. */
async function screenshot(tab, name) {
  const dir = path.join(ROOT, 'target', 'screenshots');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await tab.screenshot({ path: file, fullPage: true });
  assert.ok(existsSync(file));
  console.log(`screenshot: ${file}`);
  return file;
}

test('screenshot of the overview', async () => {
  await screenshot(page, 'overview');
});

test('the host page charts the history and switches range by its links', async () => {
  const host = await context.newPage();
  try {
    await host.goto(`${demo.url}/hosts/pve-01`);
    assert.match(await host.textContent('h3:has-text("History")'), /24 hours/);
    // The demo seeded a day of raw samples: the load chart has points to hover.
    const hovers = host.locator('svg.chart').first().locator('rect.chart-hit');
    assert.ok((await hovers.count()) > 50, 'the 24-hour load chart has data points');
    assert.ok((await host.locator('svg.chart').first().locator('g path').count()) >= 1, 'and lines');
    // Switch to a year with the range link (no script needed).
    await Promise.all([host.waitForURL(/range=1y$/), host.click('nav.ranges a:text-is("1y")')]);
    assert.match(await host.textContent('h3:has-text("History")'), /year/);
    const year = host.locator('svg.chart').first().locator('rect.chart-hit');
    assert.ok((await year.count()) > 100, 'a year of hourly rollups to hover');
    const first = await year.first().locator('title').textContent();
    const firstYear = Number(first.match(/(20\d\d)/)[1]);
    assert.ok(firstYear <= new Date().getUTCFullYear(), `the year starts a year back: ${first}`);
    assert.equal(await host.locator('nav.ranges a.on').textContent(), '1y');
    await screenshot(host, 'host');
  } finally {
    await host.close();
  }
});

test('search finds a VM by name across the fleet and links to its host', async () => {
  const search = await context.newPage();
  try {
    // The overview's search box leads to /search.
    await search.goto(`${demo.url}/`);
    await search.fill('input[name=q]', 'DB-PG-01');
    await Promise.all([search.waitForURL(/\/search\?q=DB-PG-01$/), search.press('input[name=q]', 'Enter')]);
    // Search reads each host's latest medium sample (every 5 s in the demo): the page is
    // server-rendered, so reload until the VM's host has sent one.
    let rows = await search.locator('tr.guest-hit').count();
    for (let i = 0; i < 30 && rows === 0; i++) {
      await search.waitForTimeout(500);
      await search.reload();
      rows = await search.locator('tr.guest-hit').count();
    }
    assert.equal(rows, 1, 'one VM has that name, on one host');
    const row = search.locator('tr.guest-hit');
    assert.match(await row.textContent(), /db-pg-01/);
    assert.equal(await row.locator('.presence').count(), 1, 'with its host\'s presence');
    assert.equal(await row.locator('.badge').count(), 1, 'and health');
    await screenshot(search, 'search');

    const link = row.locator('a[href^="/hosts/"]');
    const host = (await link.textContent()).trim();
    await Promise.all([search.waitForURL(`${demo.url}/hosts/${host}`), link.click()]);
    await search.locator('h3:text-is("Virtual machines") + table td', { hasText: /^db-pg-01$/ }).waitFor();
  } finally {
    await search.close();
  }
});

test('the timeline lists the fleet\'s events, filterable by host', async () => {
  const timeline = await context.newPage();
  try {
    // pve-08 has gone offline and come back by now: its presence lines are there.
    await timeline.goto(`${demo.url}/timeline?host=pve-08&kind=offline`);
    await timeline.waitForSelector('#events tr.event');
    const kinds = await timeline.$$eval('#events tr.event td:nth-child(4)', (cells) => cells.map((c) => c.textContent));
    assert.ok(kinds.length > 0 && kinds.every((k) => k === 'offline'), kinds.join(','));
  } finally {
    await timeline.close();
  }
});

test('the host page of pve-04 shows the degraded pool and the faulted disk', async () => {
  // A second tab: the host page reloads itself on each of its card's updates.
  const host = await context.newPage();
  try {
    await host.goto(`${demo.url}/hosts/pve-04`);
    // The table right after the "ZFS pools" heading; locators retry across the page's reloads.
    const pools = host.locator('h3:text-is("ZFS pools") + table');
    const rpool = pools.locator('tr', { has: host.locator('td:first-child', { hasText: /^rpool$/ }) });
    await rpool.waitFor();
    assert.match(await rpool.locator('td').nth(1).textContent(), /^DEGRADED/);
    assert.equal(await rpool.getAttribute('class'), 'bad');
    const faulted = pools.locator('tr', { has: host.locator('td:nth-child(2)', { hasText: /^FAULTED$/ }) });
    await faulted.waitFor();
    assert.match(await faulted.locator('td').first().textContent(), /nvme1n1p3/);
    assert.equal(await faulted.getAttribute('class'), 'bad');
  } finally {
    await host.close();
  }
});

test('admin: adding a host shows its token once', async () => {
  const admin = await context.newPage();
  try {
    await admin.goto(`${demo.url}/admin/hosts`);
    assert.equal(await admin.locator('#token').count(), 0);
    await admin.fill('input[name=host_id]', 'pve-new');
    await Promise.all([admin.waitForLoadState('load'), admin.click('form.filters button[type=submit]')]);
    await admin.waitForSelector('#token');
    const token = (await admin.textContent('#token')).trim();
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.match(await admin.textContent('#token-reveal'), /pve-new/);

    await admin.goto(`${demo.url}/admin/hosts`);
    assert.equal(await admin.locator('#token').count(), 0, 'the token is shown only once');
    assert.equal(await admin.locator('#token-reveal').count(), 0);
    await admin.waitForSelector('#host-pve-new');
    assert.match(await admin.textContent('#host-pve-new'), /pve-new/);
    assert.equal((await admin.content()).includes(token), false, 'the token is nowhere on the page');

    // Remove asks first (the script's data-confirm; no inline handler): dismissed, then accepted.
    const remove = admin.locator('#host-pve-new form[action$="/remove"] button');
    admin.once('dialog', (d) => d.dismiss());
    await remove.click();
    await admin.waitForTimeout(300);
    assert.equal(await admin.locator('#host-pve-new').count(), 1, 'dismissed: kept');
    admin.once('dialog', (d) => { assert.match(d.message(), /Remove pve-new/); d.accept(); });
    await remove.click();
    await admin.locator('#host-pve-new').waitFor({ state: 'detached', timeout: 10_000 });
  } finally {
    await admin.close();
  }
});

test('sign out ends the session; no page reported a CSP violation', async () => {
  await page.goto(`${demo.url}/`);
  await Promise.all([page.waitForURL(`${demo.url}/login`), page.click('header form.signout button')]);
  await page.goto(`${demo.url}/`);
  assert.equal(new URL(page.url()).pathname, '/login', 'signed out');
  assert.deepEqual(cspViolations, []);
});
