// End-to-end check of the operator console in headless Chromium, driven by playwright-core.
// Run by tests/it/operator_browser.rs, which starts the app and a worker runtime, seeds the data
// and passes:
//   OPS_BASE          http://127.0.0.1:PORT
//   OPS_TOKEN_DANA    OPERATOR_TOKENS entry of "dana";  OPS_TOKEN_YOSSI  the one of "yossi"
//   OPS_JOB           id of a dead whatsapp.send (the worker succeeds on its retry)
//   OPS_REFUSED_JOB   id of a dead whatsapp.send whose message the provider accepted (refused)
//   OPS_RETRYING_JOB  id of a retrying call.started (next retry minutes away)
//   OPS_DISCARD_KIND  the kind of the other dead jobs (two of them), discarded in bulk
//   OPS_DISCARD_ERROR text of those jobs' error (and only theirs)
//   OPS_CALL          a CallSid (today) with a Hebrew transcript and a stored recording
//   OPS_RECORDING     its RecordingSid
//   OPS_PHONE         the caller's number (E.164, +9725…)
//   OPS_MESSAGE_SID   the provider sid of a WhatsApp message from the caller before the call
//   OPS_MESSAGE_ID    that message's id
//   OPS_WORKER        the name of the worker runtime (its session is on the workers view)
//   OPS_SHOTS         folder for screenshots
//   OPS_DOCS_SHOTS    optional: folder for the README's screenshots (scripts/screenshots)
//   CHROMIUM          the browser binary (Debian's /usr/bin/chromium)
//   PLAYWRIGHT_DIR    the folder whose node_modules holds playwright-core
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
const docsShots = process.env.OPS_DOCS_SHOTS || '';
const job = env('OPS_JOB');
const phone = env('OPS_PHONE');
const step = (msg) => console.log(`[ops-e2e] ${msg}`);
const check = (ok, msg) => { if (!ok) throw new Error(msg); };

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
    '--autoplay-policy=no-user-gesture-required'],
});
const problems = [];
const pages = [];
const audioAnswers = [];

/** A signed-in operator in a browser context of their own (own tab storage). */
async function operator(tokenVar) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, locale: 'he-IL', timezoneId: 'America/New_York' });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // The browser logs the 4xx answers the steps provoke on purpose (a refused retry).
    if (m.type() === 'error' && !/status of 409/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(20000);
  pages.push(page);
  page.on('response', (r) => {
    if (/\/api\/recordings\/[^/]+\/audio$/.test(new URL(r.url()).pathname)) audioAnswers.push({ status: r.status(), sw: r.fromServiceWorker() });
  });
  await page.goto(`${base}/ops`);
  await page.locator('#token').fill(env(tokenVar));
  await page.locator('#signin').click();
  await page.locator('#nav').waitFor();
  return page;
}

async function shoot(page, name, docsName) {
  await page.screenshot({ path: path.join(shots, name), fullPage: true });
  if (docsShots && docsName) await page.screenshot({ path: path.join(docsShots, docsName), fullPage: true });
}

const navEdges = (page) => page.locator('#nav a').evaluateAll((links) => links.map((a) => {
  const r = a.getBoundingClientRect();
  return { left: r.left, right: r.right };
}));

/** Searches from the header box; if several results are listed, opens the one of `type`. */
async function search(page, q, type) {
  await page.goto(`${base}/ops#/`);
  await page.locator('#today').waitFor();
  await page.locator('#search').fill(q);
  await page.locator('#search').press('Enter');
  const list = page.locator('#search-results');
  const landed = page.locator('#job-detail h1, #call-facts, #customer-timeline');
  await list.or(landed).first().waitFor();
  if (await list.isVisible()) await list.locator(`li[data-type="${type}"] a`).first().click();
}

try {
  const dana = await operator('OPS_TOKEN_DANA');

  step('Hebrew first: lang="he" dir="rtl", the first navigation item at the right edge');
  check(await dana.locator('html').getAttribute('lang') === 'he', 'the page is not lang="he"');
  check(await dana.locator('html').getAttribute('dir') === 'rtl', 'the page is not dir="rtl"');
  let edges = await navEdges(dana);
  check(edges[0].right >= Math.max(...edges.map((e) => e.right)), `the first nav item is not the rightmost: ${JSON.stringify(edges)}`);
  check(edges[0].left > 1360 / 2, `the first nav item is not on the right half: ${JSON.stringify(edges[0])}`);
  check((await dana.locator('#nav a').first().innerText()).trim() === 'לוח בקרה', 'the first nav item is not in Hebrew');
  await dana.locator('#whoami #operator-name').filter({ hasText: /^dana$/ }).waitFor();

  step("dashboard: today's numbers and charts from the worker's cluster-wide counters");
  await dana.locator('.tile[data-stat="calls.total"][data-value="1"]').waitFor();
  await dana.locator('.tile[data-stat="calls.transcribed"][data-value="1"]').waitFor();
  await dana.locator('.tile[data-stat="whatsapp.received"][data-value="1"]').waitFor();
  await dana.locator('.tile[data-stat="queue.dead"][data-value="4"]').waitFor();
  // The browser runs in New York; "today" starts at midnight in CLOCK_TZ, shown in CLOCK_TZ.
  check(/(^|\D)0?0:00(\D|$)/.test(await dana.locator('#today').innerText()), 'today does not start at midnight in Asia/Jerusalem');
  // Dead: 2 whatsapp.send + 2 of the discard kind; retry: at least one call.started attempt.
  for (const chart of ['minute', 'hour']) {
    const svg = dana.locator(`svg[data-chart="${chart}"]`);
    await svg.waitFor();
    const failed = Number(await svg.getAttribute('data-failed'));
    check(failed >= 5, `the ${chart} chart shows ${failed} failures, expected at least 5`);
    const bars = await svg.locator('rect.bar.failed').evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('height'))));
    check(bars.length >= 1 && bars.every((h) => h > 0), `the ${chart} chart draws no failure bar: ${bars}`);
  }
  const sendRow = dana.locator('#by-kind tr[data-kind="whatsapp.send"] td.failed').first();
  check((await sendRow.innerText()).trim() === '2', `whatsapp.send failures per minute: ${await sendRow.innerText()}`);
  check(/\d/.test(await dana.locator('svg[data-chart="minute"] text.axis').first().textContent()), 'the chart has no time labels');
  await shoot(dana, 'ops-dashboard.png', 'dashboard.png');

  step('the English toggle: left to right, kept across a reload, and back to Hebrew');
  await dana.locator('#lang').click();
  check(await dana.locator('html').getAttribute('dir') === 'ltr', 'English is not left to right');
  check(await dana.locator('html').getAttribute('lang') === 'en', 'English is not lang="en"');
  await dana.reload();
  await dana.locator('#nav').waitFor();
  check(await dana.locator('html').getAttribute('lang') === 'en', 'the English choice did not survive a reload');
  check((await dana.locator('#nav a').first().innerText()).trim() === 'Dashboard', 'the nav is not in English');
  edges = await navEdges(dana);
  check(edges[0].left <= Math.min(...edges.map((e) => e.left)), 'in English the first nav item is not the leftmost');
  await dana.locator('svg[data-chart="minute"]').waitFor();
  await shoot(dana, 'ops-dashboard-en.png');
  await dana.locator('#lang').click();
  check(await dana.locator('html').getAttribute('dir') === 'rtl', 'back in Hebrew the page is not right to left');

  step('live: the dashboard keeps its kind filter and follows new counters without a reload');
  await dana.locator('#chart-kind').selectOption('whatsapp.send');
  const minute = dana.locator('svg[data-chart="minute"]');
  await dana.locator('svg[data-chart="minute"][data-failed="2"]').waitFor();

  step('jobs: the dead ones, their error and attempts; next retry of a retrying one');
  await dana.goto(`${base}/ops#/jobs`);
  await dana.locator('.state-chip[data-state="dead"] .count').filter({ hasText: /^4$/ }).waitFor();
  await dana.locator('.state-chip[data-state="retrying"]').click();
  const retrying = dana.locator(`tr[data-job-id="${env('OPS_RETRYING_JOB')}"]`);
  await retrying.waitFor();
  const next = retrying.locator('td.next-retry time');
  const nextAt = new Date(await next.getAttribute('datetime'));
  check(nextAt.getTime() > Date.now(), `next retry ${nextAt.toISOString()} is not in the future`);
  check((await next.innerText()).includes('בעוד'), `next retry is not a Hebrew relative time: ${await next.innerText()}`);
  check(dana.url().includes('state=retrying'), `the filter is not in the address: ${dana.url()}`);
  await dana.locator('.state-chip[data-state="dead"]').click();
  const row = dana.locator(`tr[data-job-id="${job}"]`);
  await row.waitFor();
  const error = await row.locator('td.error-cell').innerText();
  check(error.includes('fake Twilio'), `the dead job's error is not shown: ${error}`);
  check((await row.locator('td').nth(3).innerText()).trim() === '1', 'attempts are not shown');
  await shoot(dana, 'ops-jobs-dead.png', 'jobs.png');

  step('live: a refreshing list keeps the filter and the scroll position');
  await dana.setViewportSize({ width: 1360, height: 320 });
  await dana.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  const scrolled = await dana.evaluate(() => window.scrollY);
  check(scrolled > 0, 'the jobs list does not scroll at this size');
  const seen = Number(await dana.locator('#view').getAttribute('data-refreshes'));
  await dana.waitForFunction((n) => Number(document.getElementById('view').dataset.refreshes) >= n + 2, seen, { timeout: 30000 });
  check(await dana.evaluate(() => window.scrollY) === scrolled, 'a refresh moved the page');
  check(dana.url().includes('state=dead') && await dana.locator(`tr[data-job-id="${job}"]`).count() === 1, 'a refresh lost the filter');
  await dana.setViewportSize({ width: 1360, height: 900 });

  step('jobs filtered by error text');
  await dana.locator('#error-filter').fill(env('OPS_DISCARD_ERROR'));
  await dana.locator('#error-filter').press('Enter');
  await dana.locator(`tr[data-job-id="${job}"]`).waitFor({ state: 'detached' });
  const kinds = await dana.locator('#jobs-body tr[data-job-id] td:nth-child(2)').allInnerTexts();
  check(kinds.length === 2 && kinds.every((k) => k.trim() === env('OPS_DISCARD_KIND')), `the error filter shows ${kinds}`);
  await dana.locator('#error-filter').fill('');
  await dana.locator('#error-filter').press('Enter');

  step('retry as dana and see it done; the live dashboard counts it');
  await dana.locator(`tr[data-job-id="${job}"] button[data-action="retry"]`).click();
  await dana.locator('#job-state[data-state="done"]').waitFor({ timeout: 30000 });
  await shoot(dana, 'ops-job-done.png');

  step('a retry the server refuses says why');
  await dana.goto(`${base}/ops#/jobs/${encodeURIComponent(env('OPS_REFUSED_JOB'))}`);
  await dana.locator('#job-state[data-state="dead"]').waitFor();
  await dana.locator('#job-detail button[data-action="retry"]').click();
  const banner = dana.locator('#banner');
  await banner.filter({ hasText: 'cannot be retried' }).waitFor();
  const said = await banner.innerText();
  check(said.includes('second message') && said.includes('not_retryable'), `the refusal is not explained: ${said}`);
  check(await dana.locator('#job-state').getAttribute('data-state') === 'dead', 'the refused job moved');
  await shoot(dana, 'ops-job-refused.png');

  step('the dashboard follows the done retry without a reload, kind filter kept');
  await dana.goto(`${base}/ops#/?kind=whatsapp.send`);
  await minute.waitFor();
  check(await dana.locator('#chart-kind').inputValue() === 'whatsapp.send', 'the kind filter was lost');
  await dana.locator('svg[data-chart="minute"][data-done="1"]').waitFor({ timeout: 30000 });
  check(await dana.locator('#chart-kind').inputValue() === 'whatsapp.send', 'a refresh lost the kind filter');

  step('yossi discards in bulk: asked first, cancel keeps the jobs, confirm discards them');
  const yossi = await operator('OPS_TOKEN_YOSSI');
  await yossi.locator('#whoami #operator-name').filter({ hasText: /^yossi$/ }).waitFor();
  await yossi.goto(`${base}/ops#/jobs?state=dead&kind=${encodeURIComponent(env('OPS_DISCARD_KIND'))}`);
  const discardAll = yossi.locator('#discard-all');
  await discardAll.filter({ hasText: /(^|\D)2(\D|$)/ }).waitFor();
  await discardAll.click();
  const dialog = yossi.locator('#confirm');
  await dialog.waitFor();
  check((await yossi.locator('#confirm-text').innerText()).includes('2'), 'the question does not say how many');
  await shoot(yossi, 'ops-discard-confirm.png');
  await yossi.locator('#confirm-cancel').click();
  await dialog.waitFor({ state: 'hidden' });
  check(await yossi.locator('#jobs-body tr[data-job-id]').count() === 2, 'cancel discarded something');
  await discardAll.click();
  await yossi.locator('#confirm-ok').click();
  await yossi.locator('#notice').filter({ hasText: '2' }).waitFor();
  await yossi.locator('#jobs-body tr[data-job-id]').first().waitFor({ state: 'detached' });

  step("the audit log names each operator's actions");
  await dana.goto(`${base}/ops#/audit`);
  await dana.locator(`#audit-body tr[data-operator="dana"][data-action="job.retry"][data-outcome="ok"]`).waitFor();
  await dana.locator(`#audit-body tr[data-operator="dana"][data-action="job.retry"]:not([data-outcome="ok"])`).waitFor();
  const discard = dana.locator(`#audit-body tr[data-operator="yossi"][data-action="jobs.discard"]`);
  await discard.waitFor();
  check((await discard.locator('td').nth(1).innerText()).trim() === 'yossi', 'the operator column does not say yossi');
  check(!(await dana.locator('#audit-table').innerText()).includes(env('OPS_TOKEN_DANA')), 'a token is shown in the audit log');
  await shoot(dana, 'ops-audit.png', 'audit.png');

  step('workers and clock: the worker session alive with its name, the clock task and its outcome');
  await dana.goto(`${base}/ops#/workers`);
  const session = dana.locator(`#sessions-table tr[data-stale="false"]`).filter({ hasText: env('OPS_WORKER') });
  await session.first().waitFor();
  const task = dana.locator('#clock-table tr[data-task="health"]');
  await task.waitFor();
  // That tick's job is one yossi discarded above: the outcome follows the job.
  check(await task.locator('[data-badge="discarded"]').count() === 1, 'the last tick outcome is not shown');
  check(/בעוד|לפני/.test(await task.innerText()), `clock times are not relative Hebrew times: ${await task.innerText()}`);
  await shoot(dana, 'ops-workers.png', 'workers.png');

  step('calls filtered by date, status and transcript');
  const callRow = `tr[data-call="${env('OPS_CALL')}"]`;
  const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Jerusalem' }).format(new Date());
  for (const [query, present] of [
    [`date=${today}`, true], ['date=2001-01-01', false], ['status=completed', true], ['status=busy', false],
    ['has_transcript=true', true], ['has_transcript=false', false]]) {
    await dana.goto(`${base}/ops#/calls?${query}`);
    await dana.locator('#calls-body tr').first().waitFor();
    check(await dana.locator(callRow).count() === (present ? 1 : 0), `calls?${query}: the call is ${present ? 'missing' : 'listed'}`);
  }

  step("a call's story: audio streamed with Range, Hebrew transcript right to left, WhatsApp around it");
  await dana.goto(`${base}/ops#/calls/${encodeURIComponent(env('OPS_CALL'))}`);
  const transcript = dana.locator('#transcript');
  await transcript.waitFor();
  check(await transcript.evaluate((el) => getComputedStyle(el).direction) === 'rtl', 'the Hebrew transcript is not right to left');
  check(await transcript.getAttribute('lang') === 'he', 'the transcript does not carry its language');
  const audio = dana.locator('audio');
  await audio.waitFor();
  check(await audio.getAttribute('data-streaming') === 'true', 'the audio is not streamed (no service worker)');
  await dana.waitForFunction(() => document.querySelector('audio').readyState >= 1 && document.querySelector('audio').duration > 0.9);
  // The element's own requests, answered through the service worker with partial content.
  check(audioAnswers.some((a) => a.status === 206 && a.sw), `no ranged audio answer through the service worker: ${JSON.stringify(audioAnswers)}`);
  const story = dana.locator('#call-story');
  await story.locator('li[data-type="whatsapp"]').nth(1).waitFor();
  const order = await story.locator('li').evaluateAll((lis) => lis.map((li) => `${li.dataset.type}:${li.dataset.direction || ''}`));
  check(JSON.stringify(order) === JSON.stringify(['whatsapp:inbound', 'call:', 'whatsapp:outbound']), `the story is ${order}`);
  await shoot(dana, 'ops-call.png', 'call.png');

  step('search: each id type lands on its view');
  await search(dana, job, 'job');
  await dana.locator(`#job-detail`).filter({ hasText: job }).waitFor();
  await search(dana, env('OPS_CALL'), 'call');
  await dana.locator('#transcript').waitFor();
  check(dana.url().includes(env('OPS_CALL')), `CallSid search landed on ${dana.url()}`);
  await search(dana, env('OPS_RECORDING'), 'call');
  await dana.locator('#transcript').waitFor();
  check(dana.url().includes(env('OPS_CALL')), `RecordingSid search landed on ${dana.url()}`);
  await search(dana, env('OPS_MESSAGE_SID'), 'message');
  await dana.locator(`#customer-timeline li.highlight[data-id="${env('OPS_MESSAGE_ID')}"]`).waitFor();

  step('search: each spelling of the phone number lands on the customer');
  const local = `0${phone.slice(4)}`;
  for (const spelling of [`${local.slice(0, 3)}-${local.slice(3, 6)}-${local.slice(6)}`, phone, local, phone.slice(1)]) {
    await search(dana, spelling, 'customer');
    await dana.locator('#customer-phone').filter({ hasText: phone }).waitFor();
    check(dana.url().includes(encodeURIComponent(phone)) || dana.url().includes(phone), `${spelling} landed on ${dana.url()}`);
  }
  // The number stays left to right inside the Hebrew page.
  check(await dana.locator('#customer-phone').evaluate((e) => getComputedStyle(e).direction) === 'ltr', 'the phone number is not left to right');
  await shoot(dana, 'ops-customer.png');

  if (problems.length) throw new Error(problems.join('\n'));
  step('OK');
} catch (e) {
  // Leave the screens as they were, and what the browser said, for the one reading the failure.
  console.log(`[ops-e2e] failed; browser problems so far:\n${problems.join('\n')}`);
  for (const [i, p] of pages.entries()) await p.screenshot({ path: path.join(shots, `failure-${i}.png`), fullPage: true }).catch(() => {});
  throw e;
} finally {
  await browser.close();
}
