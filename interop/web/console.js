// Drives the node's operator console in headless Chromium (Debian's, through playwright-core)
// for interop/console_test.go, which sends the images and starts the destination when this
// script asks, over a line protocol: this script writes "ask: WHAT" on stderr-free stdout lines
// and waits for "ok" on stdin. At the end it prints its report as JSON (the last stdout line).
//
// usage: node console.js CONSOLE_URL OUT_DIR
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');

const [base, outDir] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// ask tells the test what to do next and waits until it has done it.
async function ask(what) {
  process.stdout.write(`ask: ${what}\n`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== 'ok') throw new Error(`the test answered ${JSON.stringify(value)} to ${what}`);
}

// number reads an integer shown in an element of the page.
const number = async (page, sel) => Number((await page.locator(sel).textContent()).trim());

// waitNumber waits until the live page shows at least want in sel, without reloading it.
async function waitNumber(page, sel, want, ms) {
  const t0 = Date.now();
  for (;;) {
    const n = await number(page, sel);
    if (n >= want) return n;
    if (Date.now() - t0 > ms) throw new Error(`${sel} shows ${n} after ${ms} ms, want ${want}`);
    await page.waitForTimeout(500);
  }
}

const shot = (page, name) => page.screenshot({ path: path.join(outDir, name) });

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 }, deviceScaleFactor: 1 });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const report = { errors };

  // The dashboard, open before anything arrives, shows the image when it is stored.
  await page.goto(base);
  report.receivedBefore = await number(page, '#received-hour');
  await ask('send');
  report.receivedAfter = await waitNumber(page, '#received-hour', report.receivedBefore + 1, 30000);
  report.reloads = await page.evaluate(() => performance.getEntriesByType('navigation').length);

  // The destination is down: the delivery of the SEG becomes a dead letter.
  report.deadLetters = await waitNumber(page, '#dead-letters', 1, 240000);
  await page.waitForTimeout(500);
  await shot(page, 'dashboard.png');

  // The instance: from the study list down to it; its image with and without the mask.
  await page.click('nav >> text=Studies');
  await page.locator('#studies tbody a').first().click();
  await page.locator('#series tbody tr:not([data-modality="SEG"]) a').first().click();
  await page.locator('#instances tbody a').first().click();
  await page.locator('#overlay').waitFor();
  await page.waitForFunction(() => ['source', 'overlay'].every((id) => document.getElementById(id).complete && document.getElementById(id).naturalWidth > 0));
  report.instance = {
    channel: (await page.locator('#channel').textContent()).trim(),
    foreground: (await page.locator('#foreground').textContent()).trim(),
    viewer: (await page.locator('#viewer').count()) ? await page.locator('#viewer').getAttribute('href') : '',
  };
  report.pixels = await page.evaluate(() => {
    const read = (img) => {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      return g.getImageData(0, 0, c.width, c.height).data;
    };
    const a = read(document.getElementById('source'));
    const b = read(document.getElementById('overlay'));
    let changed = 0;
    let red = 0;
    for (let i = 0; i < a.length; i += 4) {
      if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) {
        changed++;
        if (b[i] > b[i + 1] && b[i] > b[i + 2]) red++;
      }
    }
    const img = document.getElementById('source');
    return { width: img.naturalWidth, height: img.naturalHeight, changed, red };
  });
  await shot(page, 'instance.png');

  // The dead letter, with its last error; the destination comes back; Retry delivers it.
  await page.goto(base + 'jobs?state=discarded');
  const row = page.locator('#jobs tr[data-kind="espnode.deliver"]').first();
  await row.waitFor();
  const id = await row.getAttribute('data-job');
  report.deadLetter = { id, error: (await row.locator('td.err').textContent()).trim() };
  await shot(page, 'jobs.png');
  await ask('destination up');
  await row.locator('button', { hasText: 'Retry' }).click();
  await page.waitForURL(/done=retried/);
  report.flash = (await page.locator('.flash').textContent()).trim();
  await page.goto(base + 'jobs?state=completed');
  const t0 = Date.now();
  while ((await page.locator(`#jobs tr[data-job="${id}"]`).count()) === 0) {
    if (Date.now() - t0 > 60000) throw new Error(`job ${id} not completed 60 s after retry`);
    await page.waitForTimeout(500);
    await page.reload();
  }
  report.delivered = id;
  await page.goto(base);
  report.destination = (await page.locator('#destinations tbody tr').first().textContent()).replace(/\s+/g, ' ').trim();
  await shot(page, 'dashboard-after.png');
  await page.goto(base + 'channels?every=1m');
  await shot(page, 'channels.png');

  // A POST without the page's token is refused (the browser logs the 403 as an error).
  const seen = errors.length;
  report.forgedStatus = await page.evaluate(async (id) => {
    const r = await fetch('/console/jobs/retry', { method: 'POST', body: new URLSearchParams({ id }), redirect: 'manual' });
    return r.status;
  }, id);
  errors.splice(seen);
  await browser.close();
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(0);
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
