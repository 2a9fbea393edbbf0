// moked operator page: a small script over the operator API (/api/*), no framework, no build.
//
// * The bearer token is asked for once and kept in sessionStorage (this tab only).
// * Views are addressed by the URL hash: #/jobs?state=dead&kind=…, #/jobs/{id}, #/calls,
//   #/calls/{CallSid}, #/customers, #/customers/{phone}, #/messages/{id}, #/send.
// * Every value from the data goes into the page with textContent (never innerHTML), and text
//   that may be Hebrew gets dir="auto" so it reads right to left where it is Hebrew.
// * Recordings are fetched with the token and played from a blob: URL (an <audio src> cannot
//   send an Authorization header).
'use strict';

(() => {
  const TOKEN_KEY = 'moked.operatorToken';
  const STATES = ['queued', 'running', 'retrying', 'dead', 'done', 'discarded'];
  const ACTIVE = ['queued', 'running', 'retrying'];
  const KINDS = ['call.started', 'call.status', 'recording.process', 'whatsapp.inbound',
    'whatsapp.status', 'whatsapp.send', 'clock.reconcile', 'clock.health', 'clock.cleanup'];

  const $ = (id) => document.getElementById(id);
  let timers = [];
  let blobUrls = [];

  // ---- DOM helpers --------------------------------------------------------------------------

  /** el('td', {class: 'x', dir: 'auto'}, 'text', childNode, …) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'onclick' || k === 'onsubmit' || k === 'onchange') node.addEventListener(k.slice(2), v);
      else if (k === 'text') node.textContent = String(v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  /** Data text: dir="auto" so Hebrew renders right to left. */
  const txt = (value, tag = 'span', attrs = {}) =>
    el(tag, { dir: 'auto', ...attrs }, value === null || value === undefined || value === '' ? '—' : String(value));

  function when(iso) {
    if (!iso) return el('span', { class: 'muted' }, '—');
    const d = new Date(iso);
    const shown = isNaN(d) ? iso : d.toLocaleString('en-GB', { dateStyle: 'short', timeStyle: 'medium' });
    return el('time', { datetime: iso, title: iso }, shown);
  }

  const badge = (state) => el('span', { class: `badge ${state}`, 'data-badge': state }, state);
  const shortId = (id) => (id && id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id);

  function facts(pairs) {
    const dl = el('dl', { class: 'facts' });
    for (const [k, v] of pairs) dl.append(el('dt', {}, k), el('dd', {}, v instanceof Node ? v : txt(v)));
    return dl;
  }

  function showBanner(message) {
    const b = $('banner');
    if (!message) { b.hidden = true; b.textContent = ''; return; }
    b.textContent = message;
    b.hidden = false;
  }

  function setView(...nodes) {
    const view = $('view');
    view.replaceChildren(...nodes);
  }

  function every(ms, fn) {
    timers.push(setInterval(fn, ms));
  }

  function clearTimers() {
    timers.forEach(clearInterval);
    timers = [];
    blobUrls.forEach((u) => URL.revokeObjectURL(u));
    blobUrls = [];
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
        showLogin('The token was refused. Sign in again.');
      } else if (e instanceof ApiError) {
        showBanner(`${e.message} (${e.code})`);
      } else {
        showBanner(`Request failed: ${e.message}`);
      }
      return undefined;
    }
  }

  // ---- sign in ------------------------------------------------------------------------------

  function showLogin(message) {
    clearTimers();
    $('login').hidden = false;
    $('nav').hidden = true;
    $('signout').hidden = true;
    $('view').replaceChildren();
    showBanner('');
    const err = $('login-error');
    err.hidden = !message;
    err.textContent = message || '';
    $('token').focus();
  }

  async function signIn(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
    try {
      await api('/api/jobs/stats');
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      if (e instanceof ApiError && e.code === 'operator_api_disabled') {
        showLogin('The operator API is off on this server: set OPERATOR_TOKEN and restart it.');
      } else if (e instanceof ApiError && e.status === 401) {
        showLogin('That token was refused.');
      } else {
        showLogin(`Cannot reach the operator API: ${e.message}`);
      }
      return;
    }
    $('login').hidden = true;
    $('nav').hidden = false;
    $('signout').hidden = false;
    route();
  }

  // ---- jobs ---------------------------------------------------------------------------------

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const [path, query] = raw.split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { parts, params: new URLSearchParams(query || '') };
  }

  function jobsHash(state, kind) {
    const q = new URLSearchParams();
    if (state) q.set('state', state);
    if (kind) q.set('kind', kind);
    const s = q.toString();
    return `#/jobs${s ? `?${s}` : ''}`;
  }

  async function retryJob(id) {
    const job = await attempt(() => api(`/api/jobs/${encodeURIComponent(id)}/retry`, { method: 'POST' }));
    if (job) location.hash = `#/jobs/${encodeURIComponent(id)}`;
  }

  async function discardJob(id, after) {
    const job = await attempt(() => api(`/api/jobs/${encodeURIComponent(id)}/discard`, { method: 'POST' }));
    if (job) after();
  }

  function jobActions(job, after) {
    const canRetry = job.state === 'dead' || job.state === 'retrying';
    const canDiscard = ['queued', 'retrying', 'dead'].includes(job.state);
    return [
      el('button', { type: 'button', 'data-action': 'retry', disabled: !canRetry, onclick: () => retryJob(job.id) }, 'Retry'),
      el('button', { type: 'button', class: 'danger', 'data-action': 'discard', disabled: !canDiscard, onclick: () => discardJob(job.id, after) }, 'Discard'),
    ];
  }

  async function viewJobs(params) {
    const state = params.get('state') || '';
    const kind = params.get('kind') || '';
    const chips = el('div', { class: 'states', id: 'state-chips' });
    const kindSelect = el('select', { id: 'kind-filter', 'aria-label': 'Kind', onchange: (e) => { location.hash = jobsHash(state, e.target.value); } },
      el('option', { value: '' }, 'every kind'),
      KINDS.map((k) => el('option', { value: k, selected: k === kind }, k)));
    const bulk = el('button', { type: 'button', class: 'secondary', id: 'retry-all', hidden: true }, '');
    const body = el('tbody', { id: 'jobs-body' });
    const more = el('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
    const summary = el('p', { class: 'muted', id: 'jobs-summary' });
    let cursor = null;
    let pagesLoaded = 0;

    const renderStats = (stats) => {
      const chip = (name, count) => el('button', {
        type: 'button', class: `state-chip${name === state ? ' selected' : ''}`,
        'data-state': name || 'all', onclick: () => { location.hash = jobsHash(name, kind); },
      }, el('span', { class: 'count' }, count), el('span', { class: 'name' }, name || 'all'));
      const counts = kind ? (stats.by_kind[kind] || {}) : stats;
      const total = STATES.reduce((n, s) => n + (counts[s] || 0), 0);
      chips.replaceChildren(chip('', total), ...STATES.map((s) => chip(s, counts[s] || 0)));
      const bulkState = state === 'retrying' ? 'retrying' : 'dead';
      const n = counts[bulkState] || 0;
      bulk.hidden = !(state === 'dead' || state === 'retrying') || n === 0;
      bulk.textContent = `Retry all ${n} ${bulkState}${kind ? ` ${kind}` : ''} job${n === 1 ? '' : 's'}`;
      bulk.onclick = async () => {
        if (!window.confirm(`Queue ${n} ${bulkState} job(s) again now?`)) return;
        const q = new URLSearchParams({ state: bulkState });
        if (kind) q.set('kind', kind);
        const r = await attempt(() => api(`/api/jobs/retry?${q}`, { method: 'POST' }));
        if (!r) return;
        // Jobs whose effect cannot be re-attempted stay where they were; say which and why.
        const refused = (r.refusals || []).map((x) => `${shortId(x.id)} (${x.kind}): ${x.reason}`);
        if (r.refused > refused.length) refused.push(`… and ${r.refused - refused.length} more`);
        showBanner(r.refused ? `Retried ${r.retried}; ${r.refused} cannot be retried: ${refused.join(' · ')}` : '');
        refresh();
      };
      const age = stats.oldest_queued_age_s;
      summary.textContent = age ? `Oldest queued job has waited ${age.toFixed(1)} s.` : 'No queued job is waiting.';
    };

    const row = (job) => el('tr', { 'data-job-id': job.id, 'data-job-state': job.state },
      el('td', {}, el('a', { class: 'mono', href: `#/jobs/${encodeURIComponent(job.id)}`, title: job.id }, shortId(job.id))),
      el('td', { class: 'mono' }, job.kind),
      el('td', {}, badge(job.state)),
      el('td', {}, String(job.attempts)),
      el('td', { class: 'error-cell', dir: 'auto' }, job.last_error || ''),
      el('td', {}, when(job.created_at)),
      el('td', { class: 'actions' }, jobActions(job, refresh)));

    const loadPage = async (append) => {
      const q = new URLSearchParams({ limit: '50' });
      if (state) q.set('state', state);
      if (kind) q.set('kind', kind);
      if (append && cursor) q.set('cursor', cursor);
      const page = await attempt(() => api(`/api/jobs?${q}`), { clear: false });
      if (!page) return;
      if (!append) { body.replaceChildren(); pagesLoaded = 0; }
      pagesLoaded += 1;
      page.jobs.forEach((j) => body.append(row(j)));
      if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, `No ${state || ''} jobs.`)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      more.textContent = `Load more (${body.children.length} of ${page.total})`;
    };

    async function refresh() {
      const stats = await attempt(() => api('/api/jobs/stats'), { clear: false });
      if (stats) renderStats(stats);
      if (pagesLoaded <= 1) await loadPage(false);
    }
    more.onclick = () => loadPage(true);

    setView(
      el('div', { class: 'row' }, el('h1', { class: 'grow' }, 'Jobs'), kindSelect, bulk),
      chips,
      summary,
      el('div', { class: 'card' },
        el('table', { id: 'jobs-table' },
          el('thead', {}, el('tr', {}, ['ID', 'Kind', 'State', 'Attempts', 'Last error', 'Created', ''].map((h) => el('th', {}, h)))),
          body),
        el('div', { class: 'row' }, more)));
    await refresh();
    every(4000, refresh);
  }

  async function viewJob(id) {
    const holder = el('div', { id: 'job-detail' });
    setView(el('p', {}, el('a', { href: '#/jobs' }, '← Jobs')), holder);

    const render = (job) => {
      const history = job.history.length
        ? el('table', {},
          el('thead', {}, el('tr', {}, ['#', 'At', 'Worker', 'Error'].map((h) => el('th', {}, h)))),
          el('tbody', {}, job.history.map((a, i) => el('tr', {},
            el('td', {}, String(i + 1)), el('td', {}, when(a.at)), el('td', { class: 'mono' }, a.worker),
            el('td', { class: 'error-cell', dir: 'auto' }, a.error)))))
        : el('p', { class: 'muted' }, 'No failed attempts.');
      holder.replaceChildren(
        el('div', { class: 'card' },
          el('div', { class: 'row' },
            el('h1', { class: 'grow' }, el('span', { class: 'mono' }, job.kind), ' ', el('span', { id: 'job-state', 'data-state': job.state }, badge(job.state))),
            jobActions(job, () => load())),
          facts([
            ['Id', el('span', { class: 'mono' }, job.id)],
            ['Attempts', String(job.attempts)],
            ['Created', when(job.created_at)],
            ['Due', when(job.run_at)],
            ['Started', when(job.started_at)],
            ['Finished', when(job.finished_at)],
          ]),
          job.last_error ? el('div', { class: 'section' }, el('h2', {}, 'Last error'), el('pre', { class: 'block error-block', dir: 'auto', id: 'job-error' }, job.last_error)) : null),
        el('div', { class: 'grid2' },
          el('div', { class: 'card' }, el('h2', {}, 'Attempts'), history),
          el('div', { class: 'card' }, el('h2', {}, 'Payload (numbers masked)'),
            el('pre', { class: 'block', dir: 'ltr' }, JSON.stringify(job.payload, null, 2)))));
    };

    async function load() {
      const job = await attempt(() => api(`/api/jobs/${encodeURIComponent(id)}`), { clear: false });
      if (job) render(job);
      return job;
    }
    await load();
    // While the job can still change by itself, follow it.
    every(1000, async () => {
      const current = $('job-state');
      if (current && ACTIVE.includes(current.dataset.state)) await load();
    });
  }

  // ---- calls --------------------------------------------------------------------------------

  async function viewCalls() {
    const body = el('tbody', {});
    const more = el('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
    let cursor = null;
    const load = async () => {
      const q = new URLSearchParams({ limit: '50' });
      if (cursor) q.set('cursor', cursor);
      const page = await attempt(() => api(`/api/calls?${q}`));
      if (!page) return;
      page.calls.forEach((c) => body.append(el('tr', {},
        el('td', {}, el('a', { class: 'mono', href: `#/calls/${encodeURIComponent(c.call_sid)}` }, c.call_sid)),
        el('td', {}, txt(c.status)),
        el('td', {}, c.from ? el('a', { href: `#/customers/${encodeURIComponent(c.from)}`, dir: 'ltr' }, c.from) : '—'),
        el('td', { dir: 'ltr' }, c.to || '—'),
        el('td', {}, when(c.started_at)),
        el('td', {}, c.duration_s === null ? '—' : `${c.duration_s} s`))));
      if (!body.children.length) body.append(el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'No calls yet.')));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    };
    more.onclick = load;
    setView(el('h1', {}, 'Calls'),
      el('div', { class: 'card' },
        el('table', {}, el('thead', {}, el('tr', {}, ['Call', 'Status', 'From', 'To', 'Started', 'Duration'].map((h) => el('th', {}, h)))), body),
        el('div', { class: 'row' }, more)));
    await load();
  }

  /** Fetches the audio with the token and plays it from a blob: URL. */
  async function audioPlayer(url) {
    const path = new URL(url, location.href).pathname;
    const holder = el('div', {}, el('span', { class: 'muted' }, 'Loading audio…'));
    attempt(async () => {
      const resp = await api(path, { raw: true });
      const blob = await resp.blob();
      const src = URL.createObjectURL(blob);
      blobUrls.push(src);
      holder.replaceChildren(el('audio', { controls: true, preload: 'metadata', src }));
    }).then((ok) => { if (ok === undefined && holder.querySelector('audio') === null) holder.replaceChildren(el('span', { class: 'muted' }, 'Audio unavailable.')); });
    return holder;
  }

  async function viewCall(sid) {
    const call = await attempt(() => api(`/api/calls/${encodeURIComponent(sid)}`));
    if (!call) { setView(el('p', {}, el('a', { href: '#/calls' }, '← Calls'))); return; }
    const customer = call.customer
      ? el('a', { href: `#/customers/${encodeURIComponent(call.customer.phone)}`, dir: 'ltr' }, call.customer.phone,
        call.customer.name ? txt(` · ${call.customer.name}`) : null)
      : '—';
    const recordings = await Promise.all(call.recordings.map(async (r) => el('li', { 'data-recording': r.recording_sid },
      el('div', { class: 'mono' }, r.recording_sid),
      el('div', { class: 'muted' }, [
        r.status,
        r.duration_s !== null ? `${r.duration_s} s` : null,
        r.size_bytes !== null ? `${(r.size_bytes / 1024).toFixed(0)} KiB` : null,
        r.stored_at ? `stored ${new Date(r.stored_at).toLocaleString('en-GB', { dateStyle: 'short', timeStyle: 'medium' })}` : null,
      ].filter(Boolean).join(' · ')),
      r.download_url ? await audioPlayer(r.download_url) : el('div', { class: 'muted' }, r.status === 'stored' ? 'Audio not reachable from this server (RECORDINGS_STORE).' : 'Not stored yet.'))));
    setView(
      el('p', {}, el('a', { href: '#/calls' }, '← Calls')),
      el('div', { class: 'card' },
        el('h1', {}, 'Call ', el('span', { class: 'mono' }, call.call_sid)),
        facts([
          ['Status', txt(call.status, 'span', { id: 'call-status' })],
          ['From', el('span', { dir: 'ltr' }, call.from || '—')],
          ['To', el('span', { dir: 'ltr' }, call.to || '—')],
          ['Business', call.business ? txt(call.business.name) : '—'],
          ['Customer', customer],
          ['Started', when(call.started_at)],
          ['Ended', when(call.ended_at)],
        ])),
      el('div', { class: 'card' }, el('h2', {}, 'Transcript'),
        call.transcript
          ? el('div', {},
            el('p', { class: 'transcript', dir: 'auto', lang: call.transcript.language, id: 'transcript' }, call.transcript.text),
            el('p', { class: 'muted' }, `${call.transcript.provider}${call.transcript.model ? ` · ${call.transcript.model}` : ''} · ${call.transcript.language}`))
          : el('p', { class: 'muted' }, 'No transcript.')),
      el('div', { class: 'grid2' },
        el('div', { class: 'card' }, el('h2', {}, 'Recordings'),
          recordings.length ? el('ul', { class: 'recordings' }, recordings) : el('p', { class: 'muted' }, 'No recordings.')),
        el('div', { class: 'card' }, el('h2', {}, 'Timeline'),
          el('ul', { class: 'timeline', id: 'call-events' }, call.events.map((e) => el('li', {},
            el('span', { class: 'when' }, when(e.at)), txt(e.status), el('span', {})))))));
  }

  // ---- customers and messages ---------------------------------------------------------------

  function viewCustomerSearch(message) {
    const input = el('input', { id: 'phone', name: 'phone', type: 'tel', required: true, placeholder: '050-123-4567 or +972…', dir: 'ltr' });
    setView(el('div', { class: 'card narrow' },
      el('h1', {}, 'Customer'),
      el('form', { onsubmit: (e) => { e.preventDefault(); location.hash = `#/customers/${encodeURIComponent(input.value.trim())}`; } },
        el('label', { for: 'phone' }, 'Phone number'), input, el('button', { type: 'submit' }, 'Show timeline')),
      message ? el('p', { class: 'error' }, message) : null));
    input.focus();
  }

  async function viewCustomer(phone) {
    let customer;
    try {
      customer = await api(`/api/customers/${encodeURIComponent(phone)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status !== 401) { viewCustomerSearch(e.message); return; }
      await attempt(() => Promise.reject(e));
      return;
    }
    const items = customer.timeline.map((t) => el('li', { 'data-type': t.type },
      el('span', { class: 'when' }, when(t.at)),
      el('span', {}, el('strong', {}, t.type === 'call' ? 'Call' : 'WhatsApp'), el('br'), el('span', { class: 'muted' }, `${t.direction} · `), txt(t.status)),
      el('div', {},
        el('a', { href: t.type === 'call' ? `#/calls/${encodeURIComponent(t.id)}` : `#/messages/${encodeURIComponent(t.id)}`, class: 'mono' }, shortId(t.id)),
        el('div', { dir: 'auto' }, t.summary || ''))));
    setView(
      el('p', {}, el('a', { href: '#/customers' }, '← Find another customer')),
      el('div', { class: 'card' },
        el('div', { class: 'row' }, el('h1', { class: 'grow', dir: 'ltr' }, customer.phone),
          el('a', { href: `#/send?to=${encodeURIComponent(customer.phone)}` }, 'Send WhatsApp…')),
        facts([['Last WhatsApp from them', when(customer.last_inbound_at)]])),
      el('div', { class: 'card' }, el('h2', {}, 'Timeline (newest first)'),
        items.length ? el('ul', { class: 'timeline', id: 'customer-timeline' }, items) : el('p', { class: 'muted' }, 'Nothing yet.')));
  }

  async function viewMessage(id) {
    const m = await attempt(() => api(`/api/whatsapp/messages/${encodeURIComponent(id)}`));
    if (!m) return;
    const other = m.direction === 'inbound' ? m.from : m.to;
    setView(
      other ? el('p', {}, el('a', { href: `#/customers/${encodeURIComponent(other)}` }, `← ${other}`)) : null,
      el('div', { class: 'card' },
        el('h1', {}, 'WhatsApp message ', el('span', { class: 'mono' }, shortId(m.id))),
        facts([
          ['Status', txt(m.status, 'span', { id: 'message-status' })],
          ['Direction', m.direction],
          ['From', el('span', { dir: 'ltr' }, m.from || '—')],
          ['To', el('span', { dir: 'ltr' }, m.to || '—')],
          ['Provider', `${m.provider}${m.provider_sid ? ` · ${m.provider_sid}` : ''}`],
          ['Created', when(m.created_at)],
          ['Sent', when(m.sent_at)],
          ['Delivered', when(m.delivered_at)],
          ['Read', when(m.read_at)],
          ['Error', m.error_code ? txt(`${m.error_code}: ${m.error_message || ''}`) : '—'],
        ]),
        el('h2', {}, 'Text'),
        el('p', { class: 'transcript', dir: 'auto' }, m.body || '—')));
  }

  function viewSend(params) {
    const key = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Date.now());
    const to = el('input', { id: 'send-to', required: true, type: 'tel', dir: 'ltr', value: params.get('to') || '' });
    const text = el('textarea', { id: 'send-body', dir: 'auto', placeholder: 'Free-form text (inside the 24-hour window)' });
    const sid = el('input', { id: 'send-template', placeholder: 'HX… (instead of text)', dir: 'ltr' });
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
        if (r) result.replaceChildren(el('p', { class: 'note' }, 'Queued: ', el('a', { href: `#/messages/${encodeURIComponent(r.id)}` }, r.id), ` (${r.status})`));
      },
    },
    el('label', { for: 'send-to' }, 'To'), to,
    el('label', { for: 'send-body' }, 'Text'), text,
    el('label', { for: 'send-template' }, 'Or a template (Content SID)'), sid,
    el('label', { for: 'send-vars' }, 'Template variables (JSON)'), vars,
    el('button', { type: 'submit' }, 'Send'));
    setView(el('div', { class: 'card narrow' }, el('h1', {}, 'Send a WhatsApp message'), form, result));
  }

  // ---- routing ------------------------------------------------------------------------------

  function route() {
    if (!token()) { showLogin(); return; }
    clearTimers();
    showBanner('');
    const { parts, params } = parseHash();
    const section = parts[0] || 'jobs';
    document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === section));
    if (section === 'jobs' && parts[1]) return viewJob(parts[1]);
    if (section === 'calls' && parts[1]) return viewCall(parts[1]);
    if (section === 'calls') return viewCalls();
    if (section === 'customers' && parts[1]) return viewCustomer(parts[1]);
    if (section === 'customers') return viewCustomerSearch();
    if (section === 'messages' && parts[1]) return viewMessage(parts[1]);
    if (section === 'send') return viewSend(params);
    return viewJobs(params);
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const value = $('token').value.trim();
      $('token').value = '';
      if (value) signIn(value);
    });
    $('signout').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin('Signed out.');
    });
    window.addEventListener('hashchange', () => { if (token()) route(); });
    if (token()) signIn(token()); else showLogin();
  });
})();
