// End-to-end check of the operator page in headless Chromium, driven by playwright-core.
// Run by tests/it/operator_browser.rs, which starts the app and a worker and passes:
//   OPS_BASE       http://127.0.0.1:PORT
//   OPS_TOKEN      the operator token
//   OPS_JOB        id of a dead job (the worker succeeds on its retry)
//   OPS_REFUSED_JOB id of a dead whatsapp.send whose message the provider accepted (its retry is refused)
//   OPS_CALL       a CallSid with a Hebrew transcript and a stored recording
//   OPS_PHONE      that caller's number (E.164)
//   OPS_SHOTS      folder for screenshots
//   CHROMIUM       the browser binary (Debian's /usr/bin/chromium)
//   PLAYWRIGHT_DIR the folder whose node_modules holds playwright-core
// Prints one line per step; exits non-zero with the reason on the first failure.
import { createRequire } from 'node:module';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const require = createRequire(path.join(env('PLAYWRIGHT_DIR'), 'package.json'));
const { chromium } = require('playwright-core');

const base = env('OPS_BASE');
const shots = env('OPS_SHOTS');
const job = env('OPS_JOB');
const step = (msg) => console.log(`[ops-e2e] ${msg}`);

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.setDefaultTimeout(20000);

  step('open /ops and sign in');
  await page.goto(`${base}/ops`);
  await page.locator('#token').fill(env('OPS_TOKEN'));
  await page.locator('#signin').click();

  step('see two dead jobs in the counts');
  const deadCount = page.locator('.state-chip[data-state="dead"] .count');
  await deadCount.filter({ hasText: /^2$/ }).waitFor();

  step('open the dead jobs and find the job with its error and attempts');
  await page.locator('.state-chip[data-state="dead"]').click();
  const row = page.locator(`tr[data-job-id="${job}"]`);
  await row.waitFor();
  const error = await row.locator('td.error-cell').innerText();
  if (!error.includes('fake Twilio')) throw new Error(`the dead job's error is not shown: ${error}`);
  const attempts = await row.locator('td').nth(3).innerText();
  if (attempts.trim() !== '1') throw new Error(`attempts shown as ${attempts}`);
  await page.screenshot({ path: path.join(shots, 'ops-jobs-dead.png'), fullPage: true });

  step('retry it and see it done');
  await row.locator('button[data-action="retry"]').click();
  await page.locator('#job-state[data-state="done"]').waitFor({ timeout: 30000 });
  await page.screenshot({ path: path.join(shots, 'ops-job-done.png'), fullPage: true });

  step('retry the job whose message was already accepted and see why it is refused');
  await page.goto(`${base}/ops#/jobs/${encodeURIComponent(env('OPS_REFUSED_JOB'))}`);
  await page.locator('#job-state[data-state="dead"]').waitFor();
  const before = problems.length;
  await page.locator('#job-detail button[data-action="retry"]').click();
  const banner = page.locator('#banner');
  await banner.filter({ hasText: 'cannot be retried' }).waitFor();
  // The browser logs the 409 it was meant to get; anything else still counts.
  problems.splice(before, problems.length - before,
    ...problems.slice(before).filter((p) => !p.includes('status of 409')));
  const said = await banner.innerText();
  if (!said.includes('second message') || !said.includes('not_retryable')) throw new Error(`the refusal is not explained: ${said}`);
  if (await page.locator('#job-state').getAttribute('data-state') !== 'dead') throw new Error('the refused job moved');
  await page.screenshot({ path: path.join(shots, 'ops-job-refused.png'), fullPage: true });

  step('open the call: transcript right to left, audio player');
  await page.goto(`${base}/ops#/calls/${encodeURIComponent(env('OPS_CALL'))}`);
  const transcript = page.locator('#transcript');
  await transcript.waitFor();
  const direction = await transcript.evaluate((el) => getComputedStyle(el).direction);
  if (direction !== 'rtl') throw new Error(`the Hebrew transcript renders ${direction}`);
  await page.locator('audio').waitFor();
  const audioOk = await page.locator('audio').evaluate((a) => a.src.startsWith('blob:'));
  if (!audioOk) throw new Error('the audio player has no authenticated blob source');
  await page.screenshot({ path: path.join(shots, 'ops-call.png'), fullPage: true });

  step("open the caller's timeline");
  await page.goto(`${base}/ops#/customers/${encodeURIComponent(env('OPS_PHONE'))}`);
  await page.locator('#customer-timeline li').first().waitFor();
  await page.screenshot({ path: path.join(shots, 'ops-customer.png'), fullPage: true });

  if (problems.length) throw new Error(problems.join('\n'));
  step('OK');
} finally {
  await browser.close();
}
