// moked operator page: the dashboard's charts, plain SVG built with DOM calls (no library, no
// inline style, so the page's strict CSP holds).
//
// `barChart(buckets, opts)` draws one stacked bar per bucket — processed (done) below, failed
// (retry + dead) above — with a few horizontal grid lines and time labels. Time runs left to
// right in both languages (the SVG is dir="ltr", as charts are read in Hebrew too). Every bar
// carries its numbers as data-* attributes and a <title> tooltip, and the SVG its totals
// (data-done, data-failed), so the browser tests read what is drawn.
'use strict';

(() => {
  const NS = 'http://www.w3.org/2000/svg';

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    for (const c of children) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  /** A round upper bound for the y axis: 1, 2, 5, 10, 20, 50, … at least `max`. */
  function niceMax(max) {
    if (max <= 0) return 1;
    const p = 10 ** Math.floor(Math.log10(max));
    for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
    return 10 * p;
  }

  /**
   * buckets: [{at: Date, done: n, failed: n}], oldest first.
   * opts: {name, label(at) → axis text, tooltip(bucket) → text, labelEvery, emptyText, ariaLabel}
   */
  function barChart(buckets, opts) {
    const W = 640; const H = 200; const left = 34; const right = 18; const top = 10; const bottom = 26;
    const plotW = W - left - right; const plotH = H - top - bottom;
    const max = niceMax(Math.max(0, ...buckets.map((b) => b.done + b.failed)));
    const y = (v) => top + plotH - (v / max) * plotH;
    const slot = plotW / Math.max(1, buckets.length);
    const barW = Math.max(1, slot * 0.72);
    const totals = buckets.reduce((a, b) => ({ done: a.done + b.done, failed: a.failed + b.failed }), { done: 0, failed: 0 });

    const root = svg('svg', {
      class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', dir: 'ltr',
      'aria-label': opts.ariaLabel, 'data-chart': opts.name, 'data-done': totals.done, 'data-failed': totals.failed,
      'data-buckets': buckets.length, preserveAspectRatio: 'none',
    });
    const grid = svg('g', { class: 'grid' });
    for (const frac of [0, 0.5, 1]) {
      const v = max * frac;
      grid.append(
        svg('line', { x1: left, x2: W - right, y1: y(v), y2: y(v) }),
        svg('text', { x: left - 4, y: y(v) + 4, 'text-anchor': 'end' }, Number.isInteger(v) ? v : v.toFixed(1)));
    }
    root.append(grid);

    const bars = svg('g', { class: 'bars' });
    buckets.forEach((b, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      const g = svg('g', { class: 'bucket', 'data-at': b.at.toISOString(), 'data-done': b.done, 'data-failed': b.failed });
      g.append(svg('title', {}, opts.tooltip(b)));
      if (b.done > 0) g.append(svg('rect', { class: 'bar done', x, width: barW, y: y(b.done), height: y(0) - y(b.done) }));
      if (b.failed > 0) {
        g.append(svg('rect', { class: 'bar failed', x, width: barW, y: y(b.done + b.failed), height: y(b.done) - y(b.done + b.failed) }));
      }
      // A transparent full-height target so the tooltip shows on empty minutes too.
      g.append(svg('rect', { class: 'hit', x: left + i * slot, width: slot, y: top, height: plotH }));
      bars.append(g);
      if (i % opts.labelEvery === 0 || i === buckets.length - 1) {
        bars.append(svg('text', { class: 'axis', x: x + barW / 2, y: H - 8, 'text-anchor': 'middle' }, opts.label(b.at)));
      }
    });
    root.append(bars);
    if (totals.done + totals.failed === 0) {
      root.append(svg('text', { class: 'empty-note', x: left + plotW / 2, y: top + plotH / 2, 'text-anchor': 'middle' }, opts.emptyText));
    }
    return root;
  }

  window.MokedCharts = { barChart, niceMax };
})();
