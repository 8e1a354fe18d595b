// Opens each study in the node's OHIF viewer in headless Chromium (Debian's, driven by
// playwright-core) and saves its viewport's pixels before and after the SEG is put over it, for
// interop/browser_test.go to find the overlay's pixels in. One browser session for all studies.
//
// usage: node viewer.js VIEWER_URL OUT_DIR STUDY_UID...
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const [viewer, outDir, ...studies] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// pixels returns what the viewport's canvas holds: the image and the SEG's labelmap, which
// cornerstone3D renders into it, without the page's text and prompts drawn over it.
const pixels = (page) => page.evaluate(() => document.querySelector('canvas.cornerstone-canvas').toDataURL('image/png'));

// settled waits until the canvas holds the same picture twice in a row, then saves it.
async function settled(page, name) {
  let last = null;
  let cur = null;
  for (let i = 0; i < 60; i++) {
    cur = await pixels(page);
    if (cur === last) break;
    last = cur;
    await sleep(500);
  }
  const file = path.join(outDir, name);
  fs.writeFileSync(file, Buffer.from(cur.slice(cur.indexOf(',') + 1), 'base64'));
  return file;
}

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--use-gl=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  // The viewer's onboarding tour would cover the viewport: this user has seen it.
  await page.addInitScript(() => localStorage.setItem('shownTours', JSON.stringify(['basicViewerTour'])));
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('response', (r) => {
    if (r.url().includes('/dicom-web/') && r.status() >= 400) errors.push(`${r.status()} ${r.url()}`);
  });
  const report = [];
  for (const [i, study] of studies.entries()) {
    const t0 = Date.now();
    await page.goto(`${viewer}viewer?StudyInstanceUIDs=${study}`);
    const seg = page.getByText('SEG', { exact: true }).first();
    await seg.waitFor({ timeout: 60000 });
    await page.locator('canvas.cornerstone-canvas').first().waitFor({ timeout: 60000 });
    await sleep(1000);
    const before = await settled(page, `${i}-before.png`);
    await seg.dblclick();
    await page.getByText('Do you want to open this Segmentation?').waitFor({ timeout: 60000 });
    const after = await settled(page, `${i}-after.png`);
    report.push({ study, before, after, ms: Date.now() - t0 });
  }
  await browser.close();
  process.stdout.write(JSON.stringify({ studies: report, errors }));
})().catch((err) => {
  process.stderr.write(`viewer: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
