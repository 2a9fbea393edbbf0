// moked operator console: the views, over the operator API (/api/*), no framework, no build.
//
// * The bearer token is asked for once and kept in sessionStorage (this tab only). Who is
//   signed in comes from GET /api/me (OPERATOR_TOKENS names each operator).
// * Words, dates and the language toggle live in i18n.js (Hebrew and right to left first);
//   the dashboard's SVG charts in charts.js.
// * Views are addressed by the URL hash, filters included, so a reload keeps the operator's
//   place: #/ (dashboard), #/jobs?state=dead&kind=…&q=…, #/jobs/{id}, #/calls?date=…&status=…
//   &has_transcript=…, #/calls/{CallSid}, #/customers, #/customers/{phone}, #/messages/{id},
//   #/workers, #/audit, #/search?q=…, #/send. Filters change the hash with replaceState (no
//   re-render, the focus stays in the box).
// * Live: every view refreshes itself every few seconds while the tab is visible, replacing
//   only the parts whose data changed in place, so filters, scroll and a playing recording stay.
// * Every value from the data goes into the page with textContent (never innerHTML); text that
//   may be Hebrew gets dir="auto", ids, numbers and phone numbers dir="ltr".
// * Recordings stream: a service worker (sw.js) adds the bearer token to the <audio> element's
//   own requests, Range included, so playback starts before the file is downloaded. Without a
//   service worker the audio is fetched whole and played from a blob: URL.
'use strict';

(() => {
  const I = window.MokedI18n;
  const { t } = I;
  const TOKEN_KEY = 'moked.operatorToken';
  const STATES = ['queued', 'running', 'retrying', 'dead', 'done', 'discarded'];
  const ACTIVE = ['queued', 'running', 'retrying'];
  const KINDS = ['call.started', 'call.status', 'recording.process', 'whatsapp.inbound',
    'whatsapp.status', 'whatsapp.send', 'clock.reconcile', 'clock.health', 'clock.cleanup'];
  const CALL_STATUSES = ['queued', 'ringing', 'in-progress', 'completed', 'busy', 'no-answer', 'failed', 'canceled'];
  const REFRESH_MS = 5000;

  const $ = (id) => document.getElementById(id);
  let timers = [];
  let blobUrls = [];
  let generation = 0; // bumped on every route: a slow answer for a view left behind is dropped

  // ---- DOM helpers --------------------------------------------------------------------------

  /** el('td', {class: 'x', dir: 'auto'}, 'text', childNode, …) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const isEmpty = (v) => v === null || v === undefined || v === '';
  /** Data text: dir="auto" so Hebrew renders right to left. */
  const txt = (value, tag = 'span', attrs = {}) => el(tag, { dir: 'auto', ...attrs }, isEmpty(value) ? '—' : String(value));
  /** Ids, numbers, phone numbers: always left to right, isolated from the Hebrew around them. */
  const ltr = (value, attrs = {}) => el('bdi', { dir: 'ltr', ...attrs }, isEmpty(value) ? '—' : String(value));
  const mono = (value, attrs = {}) => ltr(value, { class: 'mono', ...attrs });

  /** A time in CLOCK_TZ; `rel` shows "לפני 3 דקות" with the full time as its tooltip. */
  function when(iso, { rel = false } = {}) {
    if (!iso) return el('span', { class: 'muted' }, '—');
    const d = new Date(iso);
    if (isNaN(d)) return ltr(iso);
    const abs = I.dateTime(d);
    const relText = I.relative(d);
    return el('time', { datetime: iso, title: rel ? abs : relText, 'data-rel': rel ? 'true' : null }, rel ? relText : abs);
  }

  const badge = (state) => el('span', { class: `badge ${state}`, 'data-badge': state }, t(`state.${state}`));
  const shortId = (id) => (id && id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id);
  const heading = (key, ...rest) => el('h2', {}, t(key), ...rest);

  function facts(pairs) {
    const dl = el('dl', { class: 'facts' });
    for (const [k, v] of pairs) dl.append(el('dt', {}, t(k)), el('dd', {}, v instanceof Node ? v : txt(v)));
    return dl;
  }

  function showBanner(message) {
    const b = $('banner');
    b.hidden = !message;
    b.textContent = message || '';
  }

  function showNotice(message) {
    const b = $('notice');
    b.hidden = !message;
    b.textContent = message || '';
  }

  function setView(...nodes) {
    $('view').replaceChildren(...nodes);
    $('view').dataset.refreshes = '0';
  }

  /** Runs `fn` now and then every REFRESH_MS while the tab is visible and this view is shown. */
  function live(fn, ms = REFRESH_MS) {
    const mine = generation;
    timers.push(setInterval(async () => {
      if (document.hidden || mine !== generation) return;
      await fn();
      // How many refreshes this view has had (the browser tests wait on it).
      $('view').dataset.refreshes = String(Number($('view').dataset.refreshes || 0) + 1);
    }, ms));
  }

  function clearTimers() {
    timers.forEach(clearInterval);
    timers = [];
    blobUrls.forEach((u) => URL.revokeObjectURL(u));
    blobUrls = [];
  }

  /** Replaces the hash without a re-render (filters), keeping it bookmarkable. */
  function setHash(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (!isEmpty(v)) q.set(k, v);
    const s = q.toString();
    history.replaceState(null, '', `#${path}${s ? `?${s}` : ''}`);
  }

  // ---- API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${token() || ''}`, ...(options.headers || {}) };
    let body = options.body;
    if (body !== undefined && typeof body !== 'string') {
      body = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const resp = await fetch(path, { method: options.method || 'GET', headers, body, cache: 'no-store' });
    if (options.raw && resp.ok) return resp;
    const data = await resp.json().catch(() => null);
    if (!resp.ok) {
      const err = (data && data.error) || {};
      throw new ApiError(resp.status, err.code || `http_${resp.status}`, err.message || resp.statusText);
    }
    return data;
  }

  /**
   * Runs an API action; a 401 sends the operator back to sign in, other errors show a banner.
   * `clear: false` for the periodic reloads, so they do not wipe an action's message (e.g. why
   * a retry was refused) a moment after it appeared.
   */
  async function attempt(fn, { clear = true } = {}) {
    try {
      if (clear) showBanner('');
      return await fn();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin(t('login.again'));
      } else if (e instanceof ApiError) {
        showBanner(`${e.message} (${e.code})`);
      } else {
        showBanner(t('request.failed', { message: e.message }));
      }
      return undefined;
    }
  }

  /**
   * For a panel of a view: the data, or a note in `holder` saying why not (e.g. an endpoint
   * this server does not have yet), without a page-wide banner. A 401 still signs out.
   */
  async function panel(path, holder) {
    try {
      return await api(path);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return attempt(() => Promise.reject(e));
      holder.replaceChildren(el('p', { class: 'muted unavailable' }, t('unavailable', { message: e.message })));
      return undefined;
    }
  }

  /** The CLOCK_TZ the server reports, once per sign-in (clock, then today's stats). */
  async function learnTimeZone() {
    for (const path of ['/api/stats/today', '/api/clock']) {
      try {
        const r = await api(path);
        if (r && r.tz) { I.setTimeZone(r.tz); return; }
      } catch (_) { /* try the next one; the default zone stays */ }
    }
  }

  // ---- confirmation -------------------------------------------------------------------------

  /** A modal question; resolves true only when the operator presses the danger button. */
  function confirmDialog(text) {
    const dialog = $('confirm');
    $('confirm-text').textContent = text;
    return new Promise((resolve) => {
      const done = (answer) => {
        $('confirm-ok').onclick = null;
        $('confirm-cancel').onclick = null;
        dialog.oncancel = null;
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      $('confirm-ok').onclick = () => done(true);
      $('confirm-cancel').onclick = () => done(false);
      dialog.oncancel = () => done(false);
      dialog.showModal();
      $('confirm-cancel').focus();
    });
  }

  // ---- sign in ------------------------------------------------------------------------------

  function showLogin(message) {
    clearTimers();
    $('login').hidden = false;
    for (const id of ['nav', 'signout', 'search-form', 'whoami']) $(id).hidden = true;
    $('view').replaceChildren();
    showBanner('');
    showNotice('');
    const err = $('login-error');
    err.hidden = !message;
    err.textContent = message || '';
    $('token').focus();
  }

  async function signIn(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
    let me = null;
    try {
      await api('/api/jobs/stats');
      me = await api('/api/me').catch((e) => { if (e.status === 401) throw e; return null; });
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      if (e instanceof ApiError && e.code === 'operator_api_disabled') showLogin(t('login.disabled'));
      else if (e instanceof ApiError && e.status === 401) showLogin(t('login.refused'));
      else showLogin(t('login.unreachable', { message: e.message }));
      return;
    }
    $('login').hidden = true;
    for (const id of ['nav', 'signout', 'search-form']) $(id).hidden = false;
    const who = $('whoami');
    who.hidden = !(me && me.operator);
    who.dataset.operator = (me && me.operator) || '';
    renderWhoami();
    await Promise.all([learnTimeZone(), streamingReady()]);
    route();
  }

  function renderWhoami() {
    const who = $('whoami');
    if (who.dataset.operator) who.replaceChildren(t('signed.in.as', { name: '' }), ltr(who.dataset.operator, { id: 'operator-name' }));
  }

  // ---- streaming audio (service worker) -----------------------------------------------------

  /**
   * Registers sw.js (scope /ops) and waits briefly until it controls the page. The worker asks
   * this page for the token on each audio request (it keeps none itself).
   */
  async function streamingReady() {
    if (!('serviceWorker' in navigator) || !window.isSecureContext) return;
    try {
      await navigator.serviceWorker.register('/ops/sw.js', { scope: '/ops' });
      if (navigator.serviceWorker.controller) return;
      await Promise.race([
        new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true })),
        new Promise((resolve) => setTimeout(resolve, 3000)),
      ]);
    } catch (_) { /* the blob fallback plays the audio */ }
  }

  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.addEventListener('message', (event) => {
      if (event.data && event.data.type === 'moked-token?' && event.ports[0]) event.ports[0].postMessage({ token: token() });
    });
  }

  /** An audio player for a recording: streamed through the service worker, else from a blob. */
  function audioPlayer(url) {
    const path = new URL(url, location.href).pathname;
    if (navigator.serviceWorker && navigator.serviceWorker.controller) {
      return el('audio', { controls: true, preload: 'metadata', src: path, 'data-streaming': 'true' });
    }
    const holder = el('div', {}, el('span', { class: 'muted' }, t('call.audio.loading')));
    attempt(async () => {
      const resp = await api(path, { raw: true });
      const src = URL.createObjectURL(await resp.blob());
      blobUrls.push(src);
      holder.replaceChildren(el('audio', { controls: true, preload: 'metadata', src }));
      return true;
    }).then((ok) => { if (!ok) holder.replaceChildren(el('span', { class: 'muted' }, t('call.audio.unavailable'))); });
    return holder;
  }

  /** GET /api/jobs/stats answers the counts per state at its top level (beside by_kind). */
  const countsOf = (stats) => stats.counts || stats;

  // ---- dashboard ----------------------------------------------------------------------------

  function tile(labelKey, value, attrs = {}) {
    return el('div', { class: 'tile', ...attrs }, el('span', { class: 'value' }, ltr(value)), el('span', { class: 'label' }, t(labelKey)));
  }

  /** Series buckets → [{at, done, failed}] for one kind (or all), and per-kind totals. */
  function series(history, kind) {
    const byKind = {};
    const buckets = (history.buckets || []).map((b) => {
      let done = 0; let failed = 0;
      for (const [k, c] of Object.entries(b.counts || {})) {
        const d = c.done || 0; const f = (c.retry || 0) + (c.dead || 0);
        byKind[k] = byKind[k] || { done: 0, failed: 0 };
        byKind[k].done += d; byKind[k].failed += f;
        if (!kind || k === kind) { done += d; failed += f; }
      }
      return { at: new Date(b.at), done, failed };
    });
    return { buckets, byKind };
  }

  async function viewDashboard(params) {
    let kind = params.get('kind') || '';
    const today = el('div', { class: 'card', id: 'today' }, t('loading'));
    const queue = el('div', { class: 'card', id: 'queue-now' }, t('loading'));
    const minute = el('div', { class: 'chart-holder', id: 'chart-minute' });
    const hour = el('div', { class: 'chart-holder', id: 'chart-hour' });
    const kinds = el('tbody', { id: 'by-kind' });
    const kindSelect = el('select', {
      id: 'chart-kind', 'aria-label': t('col.kind'),
      onchange: (e) => { kind = e.target.value; setHash('/', { kind }); refresh(); },
    }, el('option', { value: '' }, t('dash.kind.all')), KINDS.map((k) => el('option', { value: k, selected: k === kind }, k)));

    const chartOpts = (name, labelEvery, fmt) => ({
      name, labelEvery, emptyText: t('chart.empty'), ariaLabel: t(`dash.${name}`),
      label: (at) => I.dateTime(at, fmt),
      tooltip: (b) => t('chart.bar', { when: I.dateTime(b.at, { dateStyle: 'short', timeStyle: 'short' }), done: b.done, failed: b.failed }),
    });

    async function refresh() {
      const mine = generation;
      const [stats, day, perMinute, perHour] = await Promise.all([
        panel('/api/jobs/stats', queue), panel('/api/stats/today', today),
        panel('/api/stats/history?span=minute', minute), panel('/api/stats/history?span=hour', hour)]);
      if (mine !== generation) return;
      if (day) {
        I.setTimeZone(day.tz);
        today.replaceChildren(
          el('div', { class: 'row' }, heading('dash.calls.today', ' '), el('span', { class: 'spacer' }),
            el('span', { class: 'muted' }, t('dash.today.since', { when: I.dateTime(new Date(day.since), { dateStyle: 'medium', timeStyle: 'short' }), tz: day.tz }))),
          el('div', { class: 'tiles', 'data-group': 'calls' },
            ['total', 'answered', 'with_recording', 'transcribed'].map((k) => tile(`dash.calls.${k}`, I.number(day.calls[k]), { 'data-stat': `calls.${k}`, 'data-value': day.calls[k] }))),
          heading('dash.wa.today'),
          el('div', { class: 'tiles', 'data-group': 'whatsapp' },
            ['sent', 'delivered', 'read', 'failed', 'received'].map((k) => tile(`dash.wa.${k}`, I.number(day.whatsapp[k]), { 'data-stat': `whatsapp.${k}`, 'data-value': day.whatsapp[k] }))));
      }
      if (stats) {
        const c = countsOf(stats);
        const age = stats.oldest_queued_age_s;
        queue.replaceChildren(heading('dash.queue'),
          el('div', { class: 'tiles' },
            tile('dash.queue.depth', I.number(c.queued || 0), { 'data-stat': 'queue.depth', 'data-value': c.queued || 0 }),
            tile('dash.queue.running', I.number(c.running || 0), { 'data-stat': 'queue.running', 'data-value': c.running || 0 }),
            tile('dash.queue.retrying', I.number(c.retrying || 0), { 'data-stat': 'queue.retrying', 'data-value': c.retrying || 0 }),
            el('a', { href: '#/jobs?state=dead', class: 'tile-link' }, tile('dash.queue.dead', I.number(c.dead || 0), { 'data-stat': 'queue.dead', 'data-value': c.dead || 0 })),
            el('div', { class: 'tile', 'data-stat': 'queue.oldest', 'data-value': age ?? '' },
              el('span', { class: 'value small' }, age ? I.duration(age) : t('dash.queue.oldest.none')), el('span', { class: 'label' }, t('dash.queue.oldest')))));
      }
      const totals = {};
      const add = (which, byKind) => {
        for (const [k, v] of Object.entries(byKind)) {
          totals[k] = totals[k] || { minute: { done: 0, failed: 0 }, hour: { done: 0, failed: 0 } };
          totals[k][which] = v;
        }
      };
      if (perMinute) {
        const s = series(perMinute, kind);
        add('minute', s.byKind);
        minute.replaceChildren(MokedCharts.barChart(s.buckets, chartOpts('minute', 10, { hour: '2-digit', minute: '2-digit' })));
      }
      if (perHour) {
        const s = series(perHour, kind);
        add('hour', s.byKind);
        hour.replaceChildren(MokedCharts.barChart(s.buckets, chartOpts('hour', 4, { hour: '2-digit', minute: '2-digit' })));
      }
      if (perMinute || perHour) {
        const rows = Object.keys(totals).sort().map((k) => el('tr', { 'data-kind': k, class: k === kind ? 'selected' : null },
          el('td', {}, el('a', { href: '#', class: 'mono', onclick: (e) => { e.preventDefault(); kindSelect.value = k; kindSelect.dispatchEvent(new Event('change')); } }, k)),
          el('td', { class: 'num done' }, ltr(I.number(totals[k].minute.done))), el('td', { class: 'num failed' }, ltr(I.number(totals[k].minute.failed))),
          el('td', { class: 'num done' }, ltr(I.number(totals[k].hour.done))), el('td', { class: 'num failed' }, ltr(I.number(totals[k].hour.failed)))));
        kinds.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 5, class: 'empty' }, t('chart.empty')))]));
      }
    }

    const legend = el('div', { class: 'legend' },
      el('span', { class: 'key done' }, t('dash.processed')), el('span', { class: 'key failed' }, t('dash.failed')));
    setView(
      el('div', { class: 'row' }, el('h1', { class: 'grow' }, t('dash.title')), kindSelect),
      el('div', { class: 'grid2' }, today, queue),
      el('div', { class: 'grid2' },
        el('div', { class: 'card' }, el('div', { class: 'row' }, heading('dash.minute'), el('span', { class: 'spacer' }), legend.cloneNode(true)), minute),
        el('div', { class: 'card' }, el('div', { class: 'row' }, heading('dash.hour'), el('span', { class: 'spacer' }), legend), hour)),
      el('div', { class: 'card' }, heading('dash.by.kind'),
        el('table', { class: 'compact' },
          el('thead', {},
            el('tr', {}, el('th', { rowspan: 2 }, t('col.kind')), el('th', { colspan: 2 }, t('dash.minute')), el('th', { colspan: 2 }, t('dash.hour'))),
            el('tr', {}, [0, 1].map(() => [el('th', { class: 'num' }, t('dash.processed')), el('th', { class: 'num' }, t('dash.failed'))]))),
          kinds),
        el('p', { class: 'muted' }, t('dash.series.note'))));
    await refresh();
    live(refresh);
  }

  // ---- jobs ---------------------------------------------------------------------------------

  async function retryJob(id) {
    const job = await attempt(() => api(`/api/jobs/${encodeURIComponent(id)}/retry`, { method: 'POST' }));
    if (job) location.hash = `#/jobs/${encodeURIComponent(id)}`;
  }

  async function discardJob(job, after) {
    if (!await confirmDialog(t('confirm.discard.one', { id: shortId(job.id), kind: job.kind }))) return;
    const done = await attempt(() => api(`/api/jobs/${encodeURIComponent(job.id)}/discard`, { method: 'POST' }));
    if (done) after();
  }

  function jobActions(job, after) {
    const canRetry = job.state === 'dead' || job.state === 'retrying';
    const canDiscard = ['queued', 'retrying', 'dead'].includes(job.state);
    return [
      el('button', { type: 'button', 'data-action': 'retry', disabled: !canRetry, onclick: () => retryJob(job.id) }, t('job.retry')),
      el('button', { type: 'button', class: 'danger', 'data-action': 'discard', disabled: !canDiscard, onclick: () => discardJob(job, after) }, t('job.discard')),
    ];
  }

  async function viewJobs(params) {
    const f = { state: params.get('state') || '', kind: params.get('kind') || '', q: params.get('q') || '' };
    const chips = el('div', { class: 'states', id: 'state-chips' });
    const kindSelect = el('select', { id: 'kind-filter', 'aria-label': t('col.kind'), onchange: (e) => { f.kind = e.target.value; changed(); } },
      el('option', { value: '' }, t('jobs.kind.all')),
      KINDS.map((k) => el('option', { value: k, selected: k === f.kind }, k)));
    const errorBox = el('input', { id: 'error-filter', type: 'search', dir: 'auto', value: f.q, placeholder: t('jobs.error.filter'), 'aria-label': t('jobs.error.filter') });
    errorBox.addEventListener('change', () => { f.q = errorBox.value.trim(); changed(); });
    const bulkRetry = el('button', { type: 'button', class: 'secondary', id: 'retry-all', hidden: true });
    const bulkDiscard = el('button', { type: 'button', class: 'danger', id: 'discard-all', hidden: true });
    const body = el('tbody', { id: 'jobs-body' });
    const more = el('button', { type: 'button', class: 'secondary', hidden: true }, t('load.more'));
    const summary = el('p', { class: 'muted', id: 'jobs-summary' });
    let cursor = null;
    let pagesLoaded = 0;

    function changed() {
      setHash('/jobs', f);
      pagesLoaded = 0;
      refresh();
    }

    const bulkQuery = (state) => {
      const q = new URLSearchParams({ state });
      if (f.kind) q.set('kind', f.kind);
      return q;
    };

    const renderStats = (stats) => {
      const chip = (name, count) => el('button', {
        type: 'button', class: `state-chip${name === f.state ? ' selected' : ''}`,
        'data-state': name || 'all', onclick: () => { f.state = name; changed(); },
      }, el('span', { class: 'count' }, ltr(I.number(count))), el('span', { class: 'name' }, name ? t(`state.${name}`) : t('state.all')));
      const counts = f.kind ? (stats.by_kind[f.kind] || {}) : countsOf(stats);
      const total = STATES.reduce((n, s) => n + (counts[s] || 0), 0);
      chips.replaceChildren(chip('', total), ...STATES.map((s) => chip(s, counts[s] || 0)));

      const retryState = f.state === 'retrying' ? 'retrying' : 'dead';
      const nRetry = counts[retryState] || 0;
      bulkRetry.hidden = !(f.state === 'dead' || f.state === 'retrying') || nRetry === 0;
      bulkRetry.textContent = t('jobs.retry.all', { state: t(`state.${retryState}`), n: nRetry });
      bulkRetry.onclick = async () => {
        const r = await attempt(() => api(`/api/jobs/retry?${bulkQuery(retryState)}`, { method: 'POST' }));
        if (!r) return;
        // Jobs whose effect cannot be re-attempted stay where they were; say which and why.
        const refused = (r.refusals || []).map((x) => `${shortId(x.id)} (${x.kind}): ${x.reason}`);
        if (r.refused > refused.length) refused.push(`… +${r.refused - refused.length}`);
        showNotice(t('jobs.retried', { n: r.retried }));
        showBanner(r.refused ? `${r.refused} cannot be retried: ${refused.join(' · ')}` : '');
        changed();
      };

      const discardable = ['dead', 'retrying', 'queued'].includes(f.state) ? f.state : '';
      const nDiscard = discardable ? counts[discardable] || 0 : 0;
      bulkDiscard.hidden = !discardable || nDiscard === 0;
      bulkDiscard.textContent = t('jobs.discard.all', { state: t(`state.${discardable || 'dead'}`), n: nDiscard });
      bulkDiscard.onclick = async () => {
        const question = t('confirm.discard.all', { n: nDiscard, state: t(`state.${discardable}`), kind: f.kind ? ` (${f.kind})` : '' });
        if (!await confirmDialog(question)) return;
        const r = await attempt(() => api(`/api/jobs/discard?${bulkQuery(discardable)}`, { method: 'POST' }));
        if (!r) return;
        showNotice(t('jobs.discarded', { n: r.discarded }));
        changed();
      };

      const age = stats.oldest_queued_age_s;
      summary.textContent = age ? t('jobs.summary', { n: I.number(countsOf(stats).queued || 0), age: I.duration(age) }) : t('dash.queue.oldest.none');
    };

    const row = (job) => el('tr', { 'data-job-id': job.id, 'data-job-state': job.state },
      el('td', {}, el('a', { href: `#/jobs/${encodeURIComponent(job.id)}`, title: job.id }, mono(shortId(job.id)))),
      el('td', {}, mono(job.kind)),
      el('td', {}, badge(job.state)),
      el('td', { class: 'num' }, ltr(job.attempts)),
      el('td', { class: 'error-cell', dir: 'auto' }, job.last_error || ''),
      el('td', {}, when(job.created_at)),
      el('td', { class: 'next-retry' }, job.state === 'retrying' ? when(job.run_at, { rel: true }) : '—'),
      el('td', { class: 'actions' }, jobActions(job, changed)));

    const loadPage = async (append) => {
      const q = new URLSearchParams({ limit: '50' });
      for (const k of ['state', 'kind', 'q']) if (f[k]) q.set(k, f[k]);
      if (append && cursor) q.set('cursor', cursor);
      const mine = generation;
      const page = await attempt(() => api(`/api/jobs?${q}`), { clear: false });
      if (!page || mine !== generation) return;
      const rows = page.jobs.map(row);
      if (append) body.append(...rows); else body.replaceChildren(...rows);
      pagesLoaded = append ? pagesLoaded + 1 : 1;
      if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 8, class: 'empty' }, f.state ? t('jobs.none.state', { state: t(`state.${f.state}`) }) : t('jobs.none'))));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      more.textContent = t('load.more.count', { shown: page.jobs.length && body.querySelectorAll('tr[data-job-id]').length, total: page.total });
    };

    async function refresh() {
      const stats = await attempt(() => api('/api/jobs/stats'), { clear: false });
      if (stats) renderStats(stats);
      // Past the first page the operator is reading: leave the rows where they are.
      if (pagesLoaded <= 1) await loadPage(false);
    }
    more.onclick = () => loadPage(true);

    setView(
      el('div', { class: 'row' }, el('h1', { class: 'grow' }, t('jobs.title')), errorBox, kindSelect, bulkRetry, bulkDiscard),
      chips,
      summary,
      el('div', { class: 'card' },
        el('table', { id: 'jobs-table' },
          el('thead', {}, el('tr', {}, ['col.id', 'col.kind', 'col.state', 'col.attempts', 'col.error', 'col.created', 'col.next', 'col.actions'].map((h) => el('th', {}, t(h))))),
          body),
        el('div', { class: 'row' }, more)));
    await refresh();
    live(refresh);
  }

  async function viewJob(id) {
    const holder = el('div', { id: 'job-detail' });
    setView(el('p', {}, el('a', { href: '#/jobs' }, t('job.back'))), holder);

    const render = (job) => {
      const history = job.history.length
        ? el('table', {},
          el('thead', {}, el('tr', {}, ['job.col.n', 'job.col.at', 'job.col.worker', 'job.col.error'].map((h) => el('th', {}, h === 'job.col.n' ? '#' : t(h))))),
          el('tbody', {}, job.history.map((a, i) => el('tr', {},
            el('td', {}, ltr(i + 1)), el('td', {}, when(a.at)), el('td', {}, mono(a.worker)),
            el('td', { class: 'error-cell', dir: 'auto' }, a.error)))))
        : el('p', { class: 'muted' }, t('job.history.none'));
      holder.replaceChildren(
        el('div', { class: 'card' },
          el('div', { class: 'row' },
            el('h1', { class: 'grow' }, mono(job.kind), ' ', el('span', { id: 'job-state', 'data-state': job.state }, badge(job.state))),
            jobActions(job, () => load())),
          facts([
            ['job.id', mono(job.id)],
            ['job.attempts', ltr(job.attempts)],
            ['job.created', when(job.created_at)],
            [job.state === 'retrying' ? 'job.next' : 'job.due', when(job.run_at, { rel: job.state === 'retrying' })],
            ['job.started', when(job.started_at)],
            ['job.finished', when(job.finished_at)],
          ]),
          job.last_error ? el('div', { class: 'section' }, heading('job.last.error'), el('pre', { class: 'block error-block', dir: 'auto', id: 'job-error' }, job.last_error)) : null),
        el('div', { class: 'grid2' },
          el('div', { class: 'card' }, heading('job.history'), history),
          el('div', { class: 'card' }, heading('job.payload'),
            el('pre', { class: 'block', dir: 'ltr' }, JSON.stringify(job.payload, null, 2)))));
    };

    async function load() {
      const job = await attempt(() => api(`/api/jobs/${encodeURIComponent(id)}`), { clear: false });
      if (job) render(job);
      return job;
    }
    await load();
    // While the job can still change by itself, follow it.
    live(async () => {
      const current = $('job-state');
      if (current && ACTIVE.includes(current.dataset.state)) await load();
    }, 1000);
  }

  // ---- calls --------------------------------------------------------------------------------

  async function viewCalls(params) {
    const f = { date: params.get('date') || '', status: params.get('status') || '', has_transcript: params.get('has_transcript') || '' };
    const body = el('tbody', { id: 'calls-body' });
    const more = el('button', { type: 'button', class: 'secondary', hidden: true }, t('load.more'));
    let cursor = null;
    let pagesLoaded = 0;
    const date = el('input', { id: 'calls-date', type: 'date', value: f.date, 'aria-label': t('calls.date'), dir: 'ltr' });
    const status = el('select', { id: 'calls-status', 'aria-label': t('calls.status') },
      el('option', { value: '' }, t('calls.status.all')), CALL_STATUSES.map((s) => el('option', { value: s, selected: s === f.status }, I.status(s))));
    const transcript = el('select', { id: 'calls-transcript', 'aria-label': t('calls.transcript') },
      [['', 'calls.transcript.any'], ['true', 'calls.transcript.yes'], ['false', 'calls.transcript.no']]
        .map(([v, k]) => el('option', { value: v, selected: v === f.has_transcript }, t(k))));
    const changed = () => {
      Object.assign(f, { date: date.value, status: status.value, has_transcript: transcript.value });
      setHash('/calls', f);
      load(false);
    };
    for (const input of [date, status, transcript]) input.addEventListener('change', changed);
    const clear = el('button', { type: 'button', class: 'secondary', onclick: () => { date.value = ''; status.value = ''; transcript.value = ''; changed(); } }, t('calls.clear'));

    const row = (c) => el('tr', { 'data-call': c.call_sid },
      el('td', {}, el('a', { href: `#/calls/${encodeURIComponent(c.call_sid)}` }, mono(c.call_sid))),
      el('td', {}, txt(I.status(c.status))),
      el('td', {}, c.from ? el('a', { href: `#/customers/${encodeURIComponent(c.from)}` }, ltr(c.from)) : '—'),
      el('td', {}, ltr(c.to)),
      el('td', {}, when(c.started_at)),
      el('td', { class: 'num' }, c.duration_s === null ? '—' : t('seconds', { n: c.duration_s })));

    async function load(append) {
      const q = new URLSearchParams({ limit: '50' });
      for (const k of Object.keys(f)) if (f[k]) q.set(k, f[k]);
      if (append && cursor) q.set('cursor', cursor);
      const mine = generation;
      const page = await attempt(() => api(`/api/calls?${q}`), { clear: !append && pagesLoaded === 0 });
      if (!page || mine !== generation) return;
      const rows = page.calls.map(row);
      if (append) body.append(...rows); else body.replaceChildren(...rows);
      pagesLoaded = append ? pagesLoaded + 1 : 1;
      if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 6, class: 'empty' }, t('calls.none'))));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    }
    more.onclick = () => load(true);
    setView(
      el('div', { class: 'row' }, el('h1', { class: 'grow' }, t('calls.title')), date, status, transcript, clear),
      el('div', { class: 'card' },
        el('table', { id: 'calls-table' }, el('thead', {}, el('tr', {}, ['col.call', 'col.status', 'col.from', 'col.to', 'col.started', 'col.duration'].map((h) => el('th', {}, t(h))))), body),
        el('div', { class: 'row' }, more)));
    await load(false);
    live(() => { if (pagesLoaded <= 1) load(false); });
  }

  /** WhatsApp messages with the caller in the day around the call, the call among them. */
  function storyItems(call, timeline) {
    const at = new Date(call.started_at).getTime();
    const day = 24 * 3600 * 1000;
    const items = timeline
      .filter((x) => x.type !== 'call' && Math.abs(new Date(x.at).getTime() - at) <= day)
      .map((x) => ({ ...x, t: new Date(x.at).getTime() }));
    items.push({ type: 'this-call', t: at, at: call.started_at });
    items.sort((a, b) => a.t - b.t);
    return items.map((x) => {
      if (x.type === 'this-call') {
        return el('li', { class: 'this-call', 'data-type': 'call' }, el('span', { class: 'when' }, when(x.at)),
          el('strong', {}, t('call.story.this')), el('span', {}, txt(I.status(call.status))));
      }
      const gap = I.duration(Math.abs(x.t - at) / 1000);
      return el('li', { 'data-type': 'whatsapp', 'data-direction': x.direction, class: `bubble ${x.direction}` },
        el('span', { class: 'when' }, when(x.at), el('br'), el('small', { class: 'muted' }, t(x.t < at ? 'rel.call.before' : 'rel.call.after', { d: gap }))),
        el('span', {}, el('strong', {}, t(`direction.${x.direction}`)), el('br'), txt(I.status(x.status), 'span', { class: 'muted' })),
        el('div', {}, el('a', { href: `#/messages/${encodeURIComponent(x.id)}` }, mono(shortId(x.id))), el('div', { dir: 'auto', class: 'text' }, x.summary || '')));
    });
  }

  async function viewCall(sid) {
    const back = el('p', {}, el('a', { href: '#/calls' }, t('call.back')));
    const call = await attempt(() => api(`/api/calls/${encodeURIComponent(sid)}`));
    if (!call) { setView(back); return; }
    const phone = (call.customer && call.customer.phone) || call.from;
    const customer = call.customer
      ? el('a', { href: `#/customers/${encodeURIComponent(call.customer.phone)}` }, ltr(call.customer.phone), call.customer.name ? txt(` · ${call.customer.name}`) : null)
      : '—';
    const recordings = call.recordings.map((r) => el('li', { 'data-recording': r.recording_sid },
      el('div', {}, mono(r.recording_sid), ' · ', txt(I.status(r.status)),
        r.duration_s !== null ? [' · ', t('seconds', { n: r.duration_s })] : null,
        r.size_bytes !== null ? [' · ', ltr(`${(r.size_bytes / 1024).toFixed(0)} KiB`)] : null),
      r.download_url ? audioPlayer(r.download_url)
        : el('div', { class: 'muted' }, t(r.status === 'stored' ? 'call.audio.unreachable' : 'call.audio.notyet'))));
    const facts1 = el('div', { id: 'call-facts' });
    const events = el('ul', { class: 'timeline', id: 'call-events' });
    const story = el('ul', { class: 'timeline story', id: 'call-story' });

    const render = (c, timeline) => {
      facts1.replaceChildren(facts([
        ['call.status', txt(I.status(c.status), 'span', { id: 'call-status', 'data-status': c.status })],
        ['call.from', ltr(c.from)],
        ['call.to', ltr(c.to)],
        ['call.business', c.business ? txt(c.business.name) : '—'],
        ['call.customer', customer],
        ['call.started', when(c.started_at)],
        ['call.ended', when(c.ended_at)],
      ]));
      events.replaceChildren(...c.events.map((e) => el('li', {}, el('span', { class: 'when' }, when(e.at)), txt(I.status(e.status)), el('span', {}))));
      if (timeline) {
        const items = storyItems(c, timeline);
        story.replaceChildren(...items);
        story.dataset.messages = String(items.length - 1);
        if (items.length === 1) story.append(el('li', { class: 'muted' }, t('call.story.none')));
      }
    };
    const timelineOf = async () => {
      if (!phone) return [];
      const c = await api(`/api/customers/${encodeURIComponent(phone)}`).catch(() => null);
      return c ? c.timeline : [];
    };

    render(call, await timelineOf());
    setView(back,
      el('div', { class: 'card' }, el('h1', {}, t('call.title'), ' ', mono(call.call_sid)), facts1),
      el('div', { class: 'card' }, heading('call.listen'),
        el('div', { class: 'listen' },
          el('div', { class: 'listen-audio' },
            recordings.length ? el('ul', { class: 'recordings' }, recordings) : el('p', { class: 'muted' }, t('call.recordings.none'))),
          el('div', { class: 'listen-text' },
            call.transcript
              ? el('div', {},
                el('p', { class: 'transcript', dir: 'auto', lang: call.transcript.language, id: 'transcript' }, call.transcript.text),
                el('p', { class: 'muted' }, t('call.transcript.lang', { lang: call.transcript.language }), ' · ',
                  ltr(`${call.transcript.provider}${call.transcript.model ? ` · ${call.transcript.model}` : ''}`)))
              : el('p', { class: 'muted' }, t('call.transcript.none'))))),
      el('div', { class: 'grid2' },
        el('div', { class: 'card' }, heading('call.story'), story),
        el('div', { class: 'card' }, heading('call.events'), events)));
    // Statuses and messages keep arriving; the audio player is left alone so playback goes on.
    live(async () => {
      const c = await api(`/api/calls/${encodeURIComponent(sid)}`).catch(() => null);
      if (c) render(c, await timelineOf());
    });
  }

  // ---- customers and messages ---------------------------------------------------------------

  function viewCustomerSearch(message) {
    const input = el('input', { id: 'phone', name: 'phone', type: 'tel', required: true, placeholder: t('customer.phone.placeholder'), dir: 'ltr' });
    setView(el('div', { class: 'card narrow' },
      el('h1', {}, t('customer.title')),
      el('form', { onsubmit: (e) => { e.preventDefault(); location.hash = `#/customers/${encodeURIComponent(input.value.trim())}`; } },
        el('label', { for: 'phone' }, t('customer.phone')), input, el('button', { type: 'submit' }, t('customer.show'))),
      message ? el('p', { class: 'error' }, message) : null));
    input.focus();
  }

  async function viewCustomer(phone, params) {
    let customer;
    try {
      customer = await api(`/api/customers/${encodeURIComponent(phone)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status !== 401) { viewCustomerSearch(e.message); return; }
      await attempt(() => Promise.reject(e));
      return;
    }
    const highlight = params.get('message');
    const list = el('ul', { class: 'timeline', id: 'customer-timeline' });
    const render = (c) => {
      list.replaceChildren(...c.timeline.map((x) => el('li', { 'data-type': x.type, 'data-id': x.id, class: x.id === highlight ? 'highlight' : null },
        el('span', { class: 'when' }, when(x.at)),
        el('span', {}, el('strong', {}, t(x.type === 'call' ? 'type.call' : 'type.whatsapp')), el('br'),
          el('span', { class: 'muted' }, t(`direction.${x.direction}`), ' · '), txt(I.status(x.status))),
        el('div', {},
          el('a', { href: x.type === 'call' ? `#/calls/${encodeURIComponent(x.id)}` : `#/messages/${encodeURIComponent(x.id)}` }, mono(shortId(x.id))),
          el('div', { dir: 'auto' }, x.summary || '')))));
      if (!c.timeline.length) list.append(el('li', { class: 'muted' }, t('customer.timeline.none')));
    };
    render(customer);
    setView(
      el('p', {}, el('a', { href: '#/customers' }, t('customer.back'))),
      el('div', { class: 'card' },
        el('div', { class: 'row' }, el('h1', { class: 'grow' }, ltr(customer.phone, { id: 'customer-phone' })),
          el('a', { href: `#/send?to=${encodeURIComponent(customer.phone)}` }, t('customer.send'))),
        facts([['customer.last.inbound', when(customer.last_inbound_at, { rel: true })]])),
      el('div', { class: 'card' }, heading('customer.timeline'), list));
    const hl = list.querySelector('.highlight');
    if (hl) hl.scrollIntoView({ block: 'center' });
    live(async () => {
      const c = await api(`/api/customers/${encodeURIComponent(phone)}`).catch(() => null);
      if (c) render(c);
    });
  }

  async function viewMessage(id) {
    const m = await attempt(() => api(`/api/whatsapp/messages/${encodeURIComponent(id)}`));
    if (!m) return;
    const other = m.direction === 'inbound' ? m.from : m.to;
    setView(
      other ? el('p', {}, el('a', { href: `#/customers/${encodeURIComponent(other)}` }, ltr(other))) : null,
      el('div', { class: 'card' },
        el('h1', {}, t('message.title'), ' ', mono(shortId(m.id))),
        facts([
          ['message.status', txt(I.status(m.status), 'span', { id: 'message-status', 'data-status': m.status })],
          ['message.direction', t(`direction.${m.direction}`)],
          ['call.from', ltr(m.from)],
          ['call.to', ltr(m.to)],
          ['message.provider', ltr(`${m.provider}${m.provider_sid ? ` · ${m.provider_sid}` : ''}`)],
          ['message.created', when(m.created_at)],
          ['message.sent', when(m.sent_at)],
          ['message.delivered', when(m.delivered_at)],
          ['message.read', when(m.read_at)],
          ['message.error', m.error_code ? txt(`${m.error_code}: ${m.error_message || ''}`) : '—'],
        ]),
        heading('message.text'),
        el('p', { class: 'transcript', dir: 'auto' }, m.body || '—')));
  }

  function viewSend(params) {
    const key = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now());
    const to = el('input', { id: 'send-to', required: true, type: 'tel', dir: 'ltr', value: params.get('to') || '' });
    const text = el('textarea', { id: 'send-body', dir: 'auto', placeholder: t('send.text.placeholder') });
    const sid = el('input', { id: 'send-template', placeholder: t('send.template.placeholder'), dir: 'ltr' });
    const vars = el('input', { id: 'send-vars', placeholder: '{"1":"Dana"}', dir: 'ltr' });
    const result = el('div', {});
    const form = el('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        const body = { to: to.value.trim() };
        if (sid.value.trim()) {
          body.content_sid = sid.value.trim();
          if (vars.value.trim()) body.content_variables = vars.value.trim();
        } else {
          body.body = text.value;
        }
        const r = await attempt(() => api('/api/whatsapp/send', { method: 'POST', body, headers: { 'Idempotency-Key': key } }));
        if (r) result.replaceChildren(el('p', { class: 'note', id: 'send-result' }, t('send.queued'), ' ', el('a', { href: `#/messages/${encodeURIComponent(r.id)}` }, mono(r.id)), ' (', I.status(r.status), ')'));
      },
    },
    el('label', { for: 'send-to' }, t('send.to')), to,
    el('label', { for: 'send-body' }, t('send.text')), text,
    el('label', { for: 'send-template' }, t('send.template')), sid,
    el('label', { for: 'send-vars' }, t('send.vars')), vars,
    el('button', { type: 'submit', id: 'send-submit' }, t('send.submit')));
    setView(el('div', { class: 'card narrow' }, el('h1', {}, t('send.title')), form, result));
  }

  // ---- workers and clock --------------------------------------------------------------------

  async function viewWorkers() {
    const sessions = el('div', { id: 'workers' }, t('loading'));
    const clock = el('div', { id: 'clock' }, t('loading'));

    async function refresh() {
      const [w, c] = await Promise.all([panel('/api/workers', sessions), panel('/api/clock', clock)]);
      if (w) {
        // GET /api/workers does not say when a session started (yet): the column shows when it does.
        const started = w.sessions.some((s) => s.started_at);
        const rows = w.sessions.map((s) => el('tr', { 'data-session': s.session, 'data-stale': String(!!s.stale), class: s.stale ? 'stale' : null },
          el('td', {}, mono(s.name)),
          el('td', {}, mono(s.session)),
          started ? el('td', {}, when(s.started_at, { rel: true })) : null,
          el('td', {}, when(s.last_seen_at, { rel: true }), ' ',
            el('span', { class: `badge ${s.stale ? 'dead' : 'done'}` }, t(s.stale ? 'workers.stale' : 'workers.alive'))),
          el('td', {}, s.running.length
            ? el('ul', { class: 'plain' }, s.running.map((j) => el('li', {},
              el('a', { href: `#/jobs/${encodeURIComponent(j.id)}` }, mono(shortId(j.id))), ' ', mono(j.kind), ' ',
              j.started_at ? el('span', { class: 'muted' }, t('workers.job.age', { age: I.duration((Date.now() - new Date(j.started_at).getTime()) / 1000) })) : null)))
            : el('span', { class: 'muted' }, t('workers.idle')))));
        sessions.replaceChildren(
          el('p', { class: 'muted' }, t('workers.stale.after', { n: w.stale_after_s })),
          rows.length
            ? el('table', { id: 'sessions-table' },
              el('thead', {}, el('tr', {}, ['workers.col.name', 'workers.col.session', started ? 'workers.col.started' : null, 'workers.col.seen', 'workers.col.running'].filter(Boolean).map((h) => el('th', {}, t(h))))),
              el('tbody', {}, rows))
            : el('p', { class: 'empty' }, t('workers.none')));
      }
      if (c) {
        I.setTimeZone(c.tz);
        const rows = c.tasks.map((task) => el('tr', { 'data-task': task.task },
          el('td', {}, mono(task.task), el('br'), el('small', { class: 'muted' }, mono(task.kind))),
          el('td', {}, mono(task.cron)),
          el('td', {}, when(task.last_tick, { rel: true })),
          el('td', {}, task.last_job
            ? [el('a', { href: `#/jobs/${encodeURIComponent(task.last_job.id)}` }, badge(task.last_job.state)),
              task.last_job.error ? el('div', { class: 'error-cell', dir: 'auto' }, task.last_job.error) : null]
            : '—'),
          el('td', {}, when(task.next_tick, { rel: true }))));
        clock.replaceChildren(
          el('p', { class: 'muted' }, t('clock.tz', { tz: '' }), ltr(c.tz)),
          rows.length
            ? el('table', { id: 'clock-table' },
              el('thead', {}, el('tr', {}, ['clock.col.task', 'clock.col.cron', 'clock.col.last', 'clock.col.outcome', 'clock.col.next'].map((h) => el('th', {}, t(h))))),
              el('tbody', {}, rows))
            : el('p', { class: 'empty' }, t('clock.none')));
      }
    }
    setView(el('h1', {}, t('nav.workers')),
      el('div', { class: 'card' }, heading('workers.title'), sessions),
      el('div', { class: 'card' }, heading('clock.title'), clock));
    await refresh();
    live(refresh);
  }

  // ---- audit --------------------------------------------------------------------------------

  async function viewAudit() {
    const body = el('tbody', { id: 'audit-body' });
    const holder = el('div', {});
    const more = el('button', { type: 'button', class: 'secondary', hidden: true }, t('load.more'));
    let cursor = null;
    let pagesLoaded = 0;
    const row = (a) => el('tr', { 'data-audit': a.id, 'data-operator': a.operator, 'data-action': a.action, 'data-outcome': a.outcome },
      el('td', {}, when(a.at)),
      el('td', {}, el('strong', {}, ltr(a.operator))),
      el('td', {}, t(`action.${a.action}`), el('br'), el('small', { class: 'muted' }, mono(a.action))),
      el('td', {}, a.action.startsWith('job.')
        ? el('a', { href: `#/jobs/${encodeURIComponent(a.target)}` }, mono(shortId(a.target)))
        : a.action === 'whatsapp.send' ? el('a', { href: `#/messages/${encodeURIComponent(a.target)}` }, mono(shortId(a.target))) : mono(a.target)),
      el('td', {}, el('span', { class: `badge ${a.outcome === 'ok' ? 'done' : 'dead'}` }, t(`outcome.${a.outcome}`))),
      el('td', { class: a.outcome === 'ok' ? 'detail' : 'error-cell', dir: 'auto' }, a.detail || ''),
      el('td', {}, mono(a.ip)));
    async function load(append) {
      const q = new URLSearchParams({ limit: '50' });
      if (append && cursor) q.set('before', cursor);
      const page = await panel(`/api/audit?${q}`, holder);
      if (!page) return;
      const rows = page.entries.map(row);
      if (append) body.append(...rows); else body.replaceChildren(...rows);
      pagesLoaded = append ? pagesLoaded + 1 : 1;
      if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, t('audit.none'))));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    }
    more.onclick = () => load(true);
    setView(el('h1', {}, t('audit.title')), el('p', { class: 'muted' }, t('audit.note')), holder,
      el('div', { class: 'card' },
        el('table', { id: 'audit-table' },
          el('thead', {}, el('tr', {}, ['audit.col.at', 'audit.col.operator', 'audit.col.action', 'audit.col.target', 'audit.col.outcome', 'audit.col.detail', 'audit.col.ip'].map((h) => el('th', {}, t(h))))),
          body),
        el('div', { class: 'row' }, more)));
    await load(false);
    live(() => { if (pagesLoaded <= 1) load(false); });
  }

  // ---- search -------------------------------------------------------------------------------

  /** Where a search result lands: a call, a customer's timeline, a job, a message's customer. */
  async function landOn(result) {
    const id = encodeURIComponent(result.id);
    if (result.type === 'call') return `#/calls/${id}`;
    if (result.type === 'customer') return `#/customers/${id}`;
    if (result.type === 'job') return `#/jobs/${id}`;
    const m = await api(`/api/whatsapp/messages/${id}`).catch(() => null);
    const other = m && (m.direction === 'inbound' ? m.from : m.to);
    return other ? `#/customers/${encodeURIComponent(other)}?message=${id}` : `#/messages/${id}`;
  }

  async function viewSearch(params) {
    const q = (params.get('q') || '').trim();
    $('search').value = q;
    if (!q) { setView(el('p', { class: 'muted' }, t('search.placeholder'))); return; }
    const r = await attempt(() => api(`/api/search?q=${encodeURIComponent(q)}`));
    if (!r) return;
    if (r.results.length === 1) {
      // One answer: go straight there (replacing the search in the history, so Back works).
      location.replace(await landOn(r.results[0]));
      return;
    }
    const items = await Promise.all(r.results.map(async (x) => el('li', { 'data-type': x.type, 'data-id': x.id },
      el('span', { class: 'badge queued' }, t(`search.type.${x.type}`)), ' ',
      el('a', { href: await landOn(x) }, txt(x.title || x.id)), ' ', mono(shortId(x.id), { class: 'mono muted' }))));
    setView(el('h1', {}, t('search.title', { q })),
      el('div', { class: 'card' }, items.length ? el('ul', { class: 'results', id: 'search-results' }, items) : el('p', { class: 'empty', id: 'search-none' }, t('search.none', { q }))));
  }

  // ---- routing ------------------------------------------------------------------------------

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const [path, query] = raw.split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { parts, params: new URLSearchParams(query || '') };
  }

  function route() {
    if (!token()) { showLogin(); return; }
    clearTimers();
    generation += 1;
    showBanner('');
    showNotice('');
    const { parts, params } = parseHash();
    const section = parts[0] || 'dashboard';
    document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === section));
    if (section === 'jobs' && parts[1]) return viewJob(parts[1]);
    if (section === 'jobs') return viewJobs(params);
    if (section === 'calls' && parts[1]) return viewCall(parts[1]);
    if (section === 'calls') return viewCalls(params);
    if (section === 'customers' && parts[1]) return viewCustomer(parts[1], params);
    if (section === 'customers') return viewCustomerSearch();
    if (section === 'messages' && parts[1]) return viewMessage(parts[1]);
    if (section === 'send') return viewSend(params);
    if (section === 'workers') return viewWorkers();
    if (section === 'audit') return viewAudit();
    if (section === 'search') return viewSearch(params);
    return viewDashboard(params);
  }

  document.addEventListener('DOMContentLoaded', () => {
    I.applyStatic();
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const value = $('token').value.trim();
      $('token').value = '';
      if (value) signIn(value);
    });
    $('signout').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(t('login.signedout'));
    });
    $('lang').addEventListener('click', () => {
      I.setLang(I.lang() === 'he' ? 'en' : 'he');
      renderWhoami();
      if (token()) route();
    });
    $('search-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const q = $('search').value.trim();
      if (!q) return;
      const target = `#/search?q=${encodeURIComponent(q)}`;
      // The same search again (no hashchange): run it anyway.
      if (location.hash === target) route(); else location.hash = target;
    });
    window.addEventListener('hashchange', () => { if (token()) route(); });
    if (token()) signIn(token()); else showLogin();
  });
})();
