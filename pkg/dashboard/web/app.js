// disaggbench dashboard: runs, run, Pareto, latency and compare views over the JSON API
// and the /events stream; in a report, over the data inlined in the page. Every value
// shown comes from events and is put in the page as text, never as markup.
(function () {
  'use strict';

  var reportEl = document.getElementById('report-data');
  var REPORT = reportEl ? JSON.parse(reportEl.textContent) : null;
  var S = {
    runs: [], details: {}, seq: 0, log: [],
    sel: { runs: null, y: 'output', series: 'run', filters: {}, lat: 'all', a: '', b: '', pa: '', pb: '', mode: 'runs' },
  };
  var charts = [];

  // ---- metric definitions (shown on the pages) ----
  var DEFS = [
    ['Output tok/s/GPU', 'Output token throughput (generated tokens over the benchmark duration) divided by every GPU of the test, ctx and gen servers together.'],
    ['Input tok/s/GPU', 'Total input tokens over the benchmark duration, divided by every GPU (ctx + gen).'],
    ['Total tok/s/GPU', 'Total token throughput (input + output tokens over the duration), divided by every GPU (ctx + gen).'],
    ['tok/s/user', 'User throughput as the client prints it: output tokens per second seen by one request (output length over end-to-end latency).'],
    ['TTFT', 'Time to first token: from sending a request to receiving its first output token (ms).'],
    ['TPOT', 'Time per output token, excluding the first: (E2EL - TTFT) / (output tokens - 1), per request (ms).'],
    ['ITL', 'Inter-token latency: the time between two consecutive streamed tokens (ms).'],
    ['E2EL', 'End-to-end latency: from sending a request to receiving its last token (ms).'],
    ['p50 / p90 / p99', 'Percentiles over the requests of one concurrency: p50 is the median; p90 and p99 appear when the client printed them.'],
    ['Pareto frontier', 'Per series, the points that no other point beats on both axes (higher throughput per GPU and higher tok/s/user).'],
    ['Concurrency', 'Requests the client keeps in flight, as it printed it (the configured value times the number of gen servers).'],
    ['Judged', 'The metrics a test is judged on (the defaults of its type, or its own); the CSV holds only these. Bold in tables.'],
  ];

  // ---- small DOM helpers: strings always become text nodes ----
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (attrs[k] == null || attrs[k] === false) continue;
        if (k === 'class') el.className = attrs[k];
        else if (k === 'on') for (var ev in attrs.on) el.addEventListener(ev, attrs.on[ev]);
        else if (k === 'style') el.setAttribute('style', attrs[k]);
        else el.setAttribute(k, attrs[k] === true ? '' : attrs[k]);
      }
    }
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el) {
    for (var i = 1; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null || c === false) continue;
      if (Array.isArray(c)) { c.forEach(function (x) { add(el, x); }); continue; }
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  function fmt(v, d) {
    if (v == null || isNaN(v)) return '';
    var a = Math.abs(v);
    if (d == null) d = a >= 1000 ? 0 : a >= 100 ? 1 : 2;
    return Number(v).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: 0 });
  }
  function fmtTime(t) { return t ? new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : ''; }
  function fmtDur(s) {
    if (s == null || isNaN(s)) return '';
    s = Math.max(0, Math.round(s));
    var m = Math.floor(s / 60), hh = Math.floor(m / 60);
    if (hh) return hh + 'h' + String(m % 60).padStart(2, '0') + 'm';
    if (m) return m + 'm' + String(s % 60).padStart(2, '0') + 's';
    return s + 's';
  }
  function since(t) { return h('span', { 'data-since': t }, fmtDur((Date.now() - Date.parse(t)) / 1000)); }

  // ---- data ----
  function getJSON(url) {
    return fetch(url, { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error(url + ': ' + r.status);
      return r.json();
    });
  }
  function loadRuns() {
    if (REPORT) { S.runs = REPORT.runs.map(function (d) { return d; }); return Promise.resolve(); }
    return getJSON('/api/runs').then(function (r) { S.runs = r.runs || []; S.seq = Math.max(S.seq, r.seq); });
  }
  function loadRun(id) {
    if (REPORT) {
      var d = REPORT.runs.filter(function (r) { return r.id === id; })[0];
      if (d) S.details[id] = d;
      return Promise.resolve(d);
    }
    return getJSON('/api/runs/' + encodeURIComponent(id)).then(function (d) { S.details[id] = d; return d; });
  }
  function selectedRuns() {
    if (!S.sel.runs) {
      S.sel.runs = {};
      var pick = REPORT ? S.runs : S.runs.slice(0, 1);
      pick.forEach(function (r) { S.sel.runs[r.id] = true; });
    }
    return S.runs.filter(function (r) { return S.sel.runs[r.id]; }).map(function (r) { return r.id; });
  }
  function loadSelected() { return Promise.all(selectedRuns().map(loadRun)); }

  // Every point of the selected runs, with its test's attributes, after the filters.
  var FILTERS = [
    ['model', 'Model', function (t) { return t.model; }],
    ['islosl', 'ISL/OSL', function (t) { return t.isl ? t.isl + '/' + t.osl : ''; }],
    ['gpu', 'GPU type', function (t) { return t.gpu_type; }],
    ['type', 'Test type', function (t) { return t.test_type + (t.category ? ' ' + t.category : ''); }],
    ['backend', 'Backend', function (t) { return t.backend; }],
    ['ctx', 'ctx GPUs', function (t) { return String(t.ctx_gpus); }],
    ['gen', 'gen GPUs', function (t) { return String(t.gen_gpus); }],
  ];
  function allTests() {
    var out = [];
    selectedRuns().forEach(function (id) {
      var d = S.details[id];
      if (!d) return;
      (d.test_list || []).forEach(function (t) { out.push({ run: id, t: t }); });
    });
    return out;
  }
  function filtered() {
    return allTests().filter(function (x) {
      return FILTERS.every(function (f) {
        var want = S.sel.filters[f[0]];
        return !want || f[2](x.t) === want;
      });
    });
  }
  function points() {
    var out = [];
    filtered().forEach(function (x) {
      (x.t.points || []).forEach(function (p) { out.push({ run: x.run, t: x.t, p: p }); });
    });
    return out;
  }

  // ---- live updates ----
  var es = null, pending = null;
  function connect() {
    if (REPORT) { var l = document.getElementById('live'); l.className = ''; l.textContent = 'report, generated ' + fmtTime(REPORT.generated); return; }
    es = new EventSource('/events?after=' + S.seq);
    var live = document.getElementById('live');
    es.onopen = function () { live.className = 'on'; live.textContent = 'live'; };
    es.onerror = function () { live.className = 'off'; live.textContent = 'reconnecting'; };
    es.onmessage = function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      S.seq = Math.max(S.seq, e.seq);
      live.textContent = 'live, event ' + e.seq;
      S.log.unshift(e);
      if (S.log.length > 40) S.log.length = 40;
      if (S.details[e.run_id]) S.details[e.run_id].stale = true;
      if (!pending) pending = setTimeout(refresh, 300);
    };
  }
  function refresh() {
    pending = null;
    var need = [loadRuns()];
    Object.keys(S.details).forEach(function (id) { if (S.details[id].stale) need.push(loadRun(id)); });
    Promise.all(need).then(update).catch(function () { /* the next event retries */ });
  }
  setInterval(function () {
    var els = document.querySelectorAll('[data-since]');
    for (var i = 0; i < els.length; i++) els[i].textContent = fmtDur((Date.now() - Date.parse(els[i].getAttribute('data-since'))) / 1000);
  }, 1000);

  // ---- routing ----
  var view = document.getElementById('view');
  var current = null;
  function route() {
    var hash = location.hash || '#/runs';
    var m = hash.match(/^#\/(runs|run|pareto|latency|compare)(?:\/(.*))?$/);
    var name = m ? m[1] : 'runs';
    var arg = m && m[2] ? decodeURIComponent(m[2]) : '';
    document.querySelectorAll('header nav a').forEach(function (a) {
      a.className = a.getAttribute('data-view') === (name === 'run' ? 'runs' : name) ? 'on' : '';
    });
    current = { name: name, arg: arg };
    destroyCharts();
    clear(view);
    view.setAttribute('data-view', name);
    var ready = name === 'run' ? loadRun(arg) : name === 'runs' ? Promise.resolve() : loadSelected();
    ready.then(function () { VIEWS[name].build(arg); update(); }).catch(function (e) { add(view, h('p', { class: 'worse' }, String(e))); });
  }
  function update() {
    if (!current) return;
    var v = VIEWS[current.name];
    if (current.name !== 'runs' && current.name !== 'run') {
      var missing = selectedRuns().filter(function (id) { return !S.details[id]; });
      if (missing.length) { Promise.all(missing.map(loadRun)).then(update); return; }
    }
    v.update(current.arg);
  }
  function destroyCharts() { charts.forEach(function (c) { c.destroy(); }); charts = []; }

  // ---- shared pieces ----
  function phaseBadge(t) {
    if (t.verdict) return h('span', { class: 'badge b-' + t.verdict }, t.verdict);
    return h('span', { class: 'badge b-' + t.phase }, t.phase);
  }
  function runBadge(r) {
    if (r.state === 'finished') return h('span', { class: 'badge ' + (r.counts.failed ? 'b-finished-fail' : 'b-finished-ok') }, 'finished');
    return h('span', { class: 'badge b-running' }, 'running');
  }
  function progress(r) {
    var c = r.counts, total = Math.max(r.tests, c.pending + c.queued + c.running + c.ended + c.done, 1);
    var seg = function (n, color) { return n ? h('span', { style: 'width:' + (100 * n / total) + '%;background:' + color }) : null; };
    return h('div', { class: 'bar', title: c.done + ' of ' + total + ' done' },
      seg(c.passed, 'var(--pass)'), seg(c.failed, 'var(--fail)'), seg(c.ended, '#6f42c1'),
      seg(c.running, 'var(--run)'), seg(c.queued, 'var(--queue)'));
  }
  function countsText(r) {
    var c = r.counts;
    return 'pending ' + c.pending + ' · queued ' + c.queued + ' · running ' + c.running + ' · done ' + c.done +
      ' (passed ' + c.passed + ', failed ' + c.failed + ')';
  }
  function defsCard(keys) {
    var dl = h('dl', { class: 'defs' });
    DEFS.forEach(function (d) { if (!keys || keys.indexOf(d[0]) >= 0) add(dl, [h('dt', null, d[0]), h('dd', null, d[1])]); });
    return h('details', { class: 'card', open: true }, h('summary', null, 'Definitions'), dl);
  }
  function runPicker(onchange) {
    var box = h('div', { class: 'runpick' });
    S.runs.forEach(function (r) {
      var cb = h('input', { type: 'checkbox', 'data-run': r.id, checked: !!S.sel.runs[r.id], on: { change: function () {
        S.sel.runs[r.id] = cb.checked; loadSelected().then(onchange);
      } } });
      add(box, h('label', null, cb, ' ', r.id, ' ', h('span', { class: 'muted' }, '(' + r.tests + ' tests, ' + r.state + ')')));
    });
    if (!S.runs.length) add(box, h('span', { class: 'muted' }, 'no runs yet'));
    return h('div', { class: 'card' }, h('h3', { style: 'margin-top:0' }, 'Runs'), box);
  }
  function filterControls(onchange) {
    var box = h('div', { class: 'controls', id: 'filters' });
    function fill() {
      clear(box);
      var tests = allTests();
      FILTERS.forEach(function (f) {
        var vals = {};
        tests.forEach(function (x) { var v = f[2](x.t); if (v && v !== 'undefined' && v !== '0') vals[v] = true; });
        var sel = h('select', { 'data-filter': f[0], on: { change: function () { S.sel.filters[f[0]] = sel.value; onchange(); } } },
          h('option', { value: '' }, 'all'));
        Object.keys(vals).sort().forEach(function (v) { add(sel, h('option', { value: v, selected: S.sel.filters[f[0]] === v }, v)); });
        add(box, h('label', null, f[1], sel));
      });
    }
    fill();
    box.refill = fill;
    return box;
  }
  var PALETTE = ['#0969da', '#cf222e', '#1a7f37', '#8250df', '#bf8700', '#1b7c83', '#e16f24', '#6e7781', '#bf3989', '#4d2d00'];
  var labelPlugin = {
    id: 'pointLabels',
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      ctx.save();
      ctx.font = '10px system-ui, sans-serif';
      ctx.fillStyle = '#444';
      chart.data.datasets.forEach(function (ds, i) {
        if (!ds.pointLabels || !chart.isDatasetVisible(i)) return;
        chart.getDatasetMeta(i).data.forEach(function (el, j) {
          var lbl = ds.data[j] && ds.data[j].label;
          if (lbl) ctx.fillText(lbl, el.x + 5, el.y - 5);
        });
      });
      ctx.restore();
    },
  };
  function newChart(canvas, cfg) {
    cfg.plugins = (cfg.plugins || []).concat([labelPlugin]);
    cfg.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, cfg.options || {});
    var c = new Chart(canvas, cfg);
    charts.push(c);
    return c;
  }

  // Pareto frontier: walking by tok/s/user from high to low, keep each point whose
  // throughput beats every point to its right.
  function frontier(pts) {
    var s = pts.slice().sort(function (a, b) { return b.x - a.x || b.y - a.y; });
    var out = [], best = -Infinity;
    s.forEach(function (p) { if (p.y > best) { out.push({ x: p.x, y: p.y }); best = p.y; } });
    return out.sort(function (a, b) { return a.x - b.x; });
  }

  // ---- views ----
  var VIEWS = {};

  VIEWS.runs = {
    build: function () {
      add(view, h('h2', null, 'Runs'),
        h('div', { class: 'card' }, h('table', { id: 'runs-table' })),
        h('div', { class: 'card' }, h('h3', { style: 'margin-top:0' }, 'Latest events'), h('div', { class: 'log mono', id: 'event-log' })));
    },
    update: function () {
      var tbl = clear(document.getElementById('runs-table'));
      add(tbl, h('tr', null, ['Run', 'State', 'Progress', 'Tests', 'Counts', 'Started', 'Duration'].map(function (x) { return h('th', null, x); })));
      S.runs.forEach(function (r) {
        add(tbl, h('tr', { 'data-run': r.id },
          h('td', { class: 'mono' }, h('a', { href: '#/run/' + encodeURIComponent(r.id) }, r.id)),
          h('td', null, runBadge(r)), h('td', null, progress(r)),
          h('td', { class: 'num' }, r.tests), h('td', { class: 'counts' }, countsText(r)),
          h('td', null, fmtTime(r.started)),
          h('td', null, r.state === 'running' && r.started ? since(r.started) : fmtDur(r.duration_s))));
      });
      if (!S.runs.length) add(tbl, h('tr', null, h('td', { colspan: 7, class: 'muted' }, 'No runs yet: waiting for events.')));
      var log = document.getElementById('event-log');
      if (log) {
        clear(log);
        S.log.forEach(function (e) { add(log, h('div', null, '#' + e.seq + ' ' + e.subject)); });
        if (!S.log.length) add(log, h('span', { class: 'muted' }, REPORT ? 'a report has no live events' : 'waiting for events'));
      }
    },
  };

  VIEWS.run = {
    build: function (id) {
      add(view, h('h2', null, 'Run ', h('span', { class: 'mono' }, id)), h('div', { class: 'card', id: 'run-summary' }),
        h('div', { class: 'card' }, h('table', { id: 'tests-table' })));
    },
    update: function (id) {
      var d = S.details[id];
      var sum = clear(document.getElementById('run-summary'));
      if (!d) { add(sum, 'no such run'); return; }
      add(sum, runBadge(d), ' ', progress(d), h('div', { class: 'counts' }, countsText(d)),
        h('div', { class: 'muted' }, 'started ', fmtTime(d.started), ' · ', d.state === 'running' ? since(d.started) : fmtDur(d.duration_s),
          ' · scheduler ', d.scheduler || '?', ' · policy ', d.policy || '?', ' · batch size ', d.batch_size || 'no limit',
          d.gpu_type ? ' · GPU ' + d.gpu_type : '', d.selection ? ' · ' + d.selection : ''));
      (d.skipped || []).forEach(function (s) { add(sum, h('div', { class: 'muted' }, 'skipped ' + s.test_id + ': ' + s.reason)); });
      var tbl = clear(document.getElementById('tests-table'));
      add(tbl, h('tr', null, ['#', 'Test', 'State', 'Job', 'Nodes', 'Submitted', 'Start', 'Duration', 'Topology'].map(function (x) { return h('th', null, x); })));
      (d.test_list || []).forEach(function (t) {
        var dur = t.duration_s ? fmtDur(t.duration_s) : t.phase === 'running' && t.start ? since(t.start) : '';
        add(tbl, h('tr', { 'data-test': t.id },
          h('td', { class: 'num' }, t.index + 1), h('td', { class: 'mono' }, t.id),
          h('td', null, phaseBadge(t), t.state ? h('div', { class: 'muted' }, t.detail || t.state) : null),
          h('td', { class: 'mono' }, t.job_id || ''), h('td', { class: 'mono' }, t.nodes || ''),
          h('td', null, fmtTime(t.submitted)), h('td', null, fmtTime(t.start)), h('td', null, dur),
          h('td', null, t.topology || '')));
        var extra = [];
        if (t.reasons && t.reasons.length) extra.push(h('ul', { class: 'reasons' }, t.reasons.map(function (x) { return h('li', null, x); })));
        if (t.points && t.points.length) extra.push(pointsTable(t));
        var acc = (t.rows || []).filter(function (r) { return r.dataset; });
        if (acc.length) extra.push(accuracyTable(acc));
        if (extra.length) add(tbl, h('tr', null, h('td'), h('td', { colspan: 8 }, extra)));
      });
    },
  };
  var PT_COLS = [
    ['c', function (p) { return p.concurrency; }, 0],
    ['out tok/s', function (p) { return p.metrics.OUTPUT_THROUGHPUT; }],
    ['out tok/s/GPU', function (p) { return p.output_tok_s_per_gpu; }],
    ['in tok/s/GPU', function (p) { return p.input_tok_s_per_gpu; }],
    ['total tok/s/GPU', function (p) { return p.total_tok_s_per_gpu; }],
    ['tok/s/user', function (p) { return p.tok_s_per_user; }],
    ['TTFT p50', 'SERVER_MEDIAN_TTFT'], ['TTFT p99', 'SERVER_P99_TTFT'],
    ['TPOT p50', 'SERVER_MEDIAN_TPOT'], ['ITL p50', 'SERVER_MEDIAN_ITL'],
    ['E2EL p50', 'SERVER_MEDIAN_E2EL'], ['E2EL p99', 'SERVER_P99_E2EL'],
  ];
  function pointsTable(t) {
    var judged = {};
    (t.rows || []).forEach(function (r) { if (r.judged) judged[r.metric] = true; });
    var tbl = h('table', { class: 'points' });
    add(tbl, h('tr', null, PT_COLS.map(function (c) { return h('th', { class: 'num' }, c[0]); })));
    t.points.forEach(function (p) {
      add(tbl, h('tr', null, PT_COLS.map(function (c) {
        var v = typeof c[1] === 'string' ? p.metrics[c[1]] : c[1](p);
        return h('td', { class: 'num' + (typeof c[1] === 'string' && judged[c[1]] ? ' judged' : '') }, fmt(v, c[2]));
      })));
    });
    return tbl;
  }
  function accuracyTable(rows) {
    var tbl = h('table');
    add(tbl, h('tr', null, ['Dataset', 'Filter', 'Metric', 'Value', 'Threshold', 'Passed'].map(function (x) { return h('th', null, x); })));
    rows.forEach(function (r) {
      add(tbl, h('tr', null, h('td', null, r.dataset), h('td', null, r.filter || ''), h('td', null, r.metric),
        h('td', { class: 'num' }, fmt(r.value, 4)), h('td', { class: 'num' }, fmt(r.threshold, 4)),
        h('td', { class: r.passed ? 'better' : 'worse' }, r.passed ? 'yes' : 'no')));
    });
    return tbl;
  }

  var Y = {
    output: ['Output tok/s/GPU', function (p) { return p.output_tok_s_per_gpu; }],
    input: ['Input tok/s/GPU', function (p) { return p.input_tok_s_per_gpu; }],
    total: ['Total tok/s/GPU', function (p) { return p.total_tok_s_per_gpu; }],
  };
  var SERIES = {
    run: ['Run', function (x) { return x.run; }],
    test: ['Test', function (x) { return x.t.id; }],
    backend: ['Backend', function (x) { return x.t.backend || '?'; }],
    topology: ['Topology', function (x) { return x.t.topology || '?'; }],
    model: ['Model', function (x) { return x.t.model || '?'; }],
  };
  function selectOf(id, opts, cur, onchange) {
    var sel = h('select', { id: id, on: { change: function () { onchange(sel.value); } } });
    Object.keys(opts).forEach(function (k) { add(sel, h('option', { value: k, selected: k === cur }, opts[k][0])); });
    return sel;
  }

  VIEWS.pareto = {
    build: function () {
      var f;
      var redraw = function () { f.refill(); VIEWS.pareto.update(); };
      f = filterControls(VIEWS.pareto.update);
      add(view, h('h2', null, 'Pareto: throughput per GPU against tok/s per user'), runPicker(redraw),
        h('div', { class: 'card controls' },
          h('label', null, 'Throughput', selectOf('ysel', Y, S.sel.y, function (v) { S.sel.y = v; VIEWS.pareto.update(); })),
          h('label', null, 'Series by', selectOf('series', SERIES, S.sel.series, function (v) { S.sel.series = v; VIEWS.pareto.update(); })),
          f),
        h('div', { class: 'card' }, h('div', { class: 'chartbox' }, h('canvas', { id: 'pareto-chart' })),
          h('p', { class: 'muted', id: 'pareto-note' })),
        defsCard(['Output tok/s/GPU', 'Input tok/s/GPU', 'Total tok/s/GPU', 'tok/s/user', 'Pareto frontier', 'Concurrency']));
      var canvas = document.getElementById('pareto-chart');
      VIEWS.pareto.chart = newChart(canvas, {
        type: 'scatter', data: { datasets: [] },
        options: {
          scales: {
            x: { title: { display: true, text: 'tok/s/user' }, beginAtZero: true },
            y: { title: { display: true, text: Y[S.sel.y][0] }, beginAtZero: true },
          },
          plugins: { tooltip: { callbacks: { label: function (c) { var d = c.raw; return (d.tip || '') + ' (' + fmt(d.x) + ', ' + fmt(d.y) + ')'; } } } },
        },
      });
    },
    update: function () {
      var chart = VIEWS.pareto.chart;
      if (!chart) return;
      var f = document.getElementById('filters');
      if (f && f.refill && f.querySelectorAll('option').length <= FILTERS.length) f.refill();
      var ys = Y[S.sel.y], ser = SERIES[S.sel.series];
      var groups = {}, order = [];
      points().forEach(function (x) {
        var y = ys[1](x.p), xx = x.p.tok_s_per_user;
        if (y == null || xx == null) return;
        var k = ser[1](x);
        if (!groups[k]) { groups[k] = []; order.push(k); }
        groups[k].push({ x: xx, y: y, label: 'c=' + x.p.concurrency + (S.sel.series === 'topology' ? '' : ' ' + (x.t.topology || '')),
          tip: x.t.id + ' c=' + x.p.concurrency });
      });
      var ds = [];
      order.forEach(function (k, i) {
        var color = PALETTE[i % PALETTE.length];
        ds.push({ label: k, data: groups[k], backgroundColor: color, borderColor: color, pointRadius: 4, pointLabels: true });
        ds.push({ label: k + ' frontier', data: frontier(groups[k]), showLine: true, borderColor: color, backgroundColor: color,
          borderDash: [5, 3], pointRadius: 0, borderWidth: 1.5 });
      });
      chart.data.datasets = ds;
      chart.options.scales.y.title.text = ys[0];
      chart.update();
      var n = 0; order.forEach(function (k) { n += groups[k].length; });
      var note = document.getElementById('pareto-note');
      note.textContent = n + ' points in ' + order.length + ' series' + (n ? '' : ': no perf results among the selected runs and filters yet');
      view.setAttribute('data-points', n);
    },
  };

  var LAT = [['TTFT', 'TTFT'], ['TPOT', 'TPOT'], ['ITL', 'ITL'], ['E2EL', 'E2EL']];
  var PCT = [['p50', 'MEDIAN', []], ['p90', 'P90', [6, 3]], ['p99', 'P99', [2, 2]]];
  VIEWS.latency = {
    build: function () {
      var f;
      var redraw = function () { f.refill(); VIEWS.latency.update(); };
      f = filterControls(VIEWS.latency.update);
      var grid = h('div', { class: 'charts' });
      add(view, h('h2', null, 'Latency percentiles against concurrency'), runPicker(redraw), h('div', { class: 'card controls' }, f),
        h('p', { class: 'muted' }, 'One colour per test: solid line p50 (median), dashed p90, dotted p99.'), grid,
        defsCard(['TTFT', 'TPOT', 'ITL', 'E2EL', 'p50 / p90 / p99', 'Concurrency']));
      VIEWS.latency.charts = LAT.map(function (m) {
        var canvas = h('canvas', { id: 'lat-' + m[0] });
        add(grid, h('div', { class: 'card' }, h('h3', { style: 'margin-top:0' }, m[0] + ' (ms)'), h('div', { class: 'chartbox small' }, canvas)));
        return newChart(canvas, {
          type: 'line', data: { datasets: [] },
          options: {
            parsing: false,
            scales: {
              x: { type: 'logarithmic', title: { display: true, text: 'concurrency (log)' } },
              y: { title: { display: true, text: m[0] + ' ms' }, beginAtZero: true },
            },
            plugins: { legend: { labels: { boxWidth: 18, font: { size: 10 },
              filter: function (item) { return !/ p9\d$/.test(item.text); } } } },
          },
        });
      });
    },
    update: function () {
      var charts2 = VIEWS.latency.charts;
      if (!charts2) return;
      var tests = filtered().filter(function (x) { return x.t.points && x.t.points.length; });
      var multi = selectedRuns().length > 1;
      LAT.forEach(function (m, i) {
        var ds = [];
        tests.forEach(function (x, j) {
          var color = PALETTE[j % PALETTE.length];
          PCT.forEach(function (pc) {
            var key = 'SERVER_' + pc[1] + '_' + m[1];
            var data = x.t.points.filter(function (p) { return p.metrics[key] != null; })
              .map(function (p) { return { x: p.concurrency, y: p.metrics[key] }; });
            if (!data.length) return;
            ds.push({ label: (multi ? x.run + ' ' : '') + shortName(x.t) + (pc[0] === 'p50' ? '' : ' ' + pc[0]), data: data, borderColor: color,
              backgroundColor: color, borderDash: pc[2], pointRadius: 3, borderWidth: 1.5 });
          });
        });
        charts2[i].data.datasets = ds;
        charts2[i].update();
      });
      view.setAttribute('data-series', tests.length);
    },
  };
  function shortName(t) { return t.id.replace(/^(disagg|wideep)_(perf|stress|accuracy)_/, ''); }

  // Metric direction: +1 higher is better, -1 lower is better, 0 neither.
  function direction(m) {
    if (/THROUGHPUT|GOODPUT|SUCCESSFUL|per_gpu|per_user|tok_s/i.test(m)) return 1;
    if (/^SERVER_|FAILED|DURATION/.test(m)) return -1;
    return 0;
  }
  function pointMetrics(p) {
    var m = Object.assign({}, p.metrics);
    if (p.output_tok_s_per_gpu != null) m.output_tok_s_per_gpu = p.output_tok_s_per_gpu;
    if (p.input_tok_s_per_gpu != null) m.input_tok_s_per_gpu = p.input_tok_s_per_gpu;
    if (p.total_tok_s_per_gpu != null) m.total_tok_s_per_gpu = p.total_tok_s_per_gpu;
    return m;
  }
  function deltaCell(a, b, metric) {
    if (a == null || b == null) return h('td', { class: 'num same' }, '');
    if (a === 0) return h('td', { class: 'num same' }, b === 0 ? '0%' : 'n/a');
    var d = 100 * (b - a) / Math.abs(a), dir = direction(metric);
    var cls = Math.abs(d) < 0.5 || !dir ? 'same' : (d > 0) === (dir > 0) ? 'better' : 'worse';
    return h('td', { class: 'num delta ' + cls }, (d > 0 ? '+' : '') + fmt(d, 1) + '%');
  }
  var CMP_METRICS = ['output_tok_s_per_gpu', 'OUTPUT_THROUGHPUT', 'USER_THROUGHPUT', 'REQUEST_THROUGHPUT',
    'SERVER_MEDIAN_TTFT', 'SERVER_P90_TTFT', 'SERVER_P99_TTFT', 'SERVER_MEDIAN_TPOT', 'SERVER_P99_TPOT',
    'SERVER_MEDIAN_ITL', 'SERVER_MEDIAN_E2EL', 'SERVER_P99_E2EL'];

  VIEWS.compare = {
    build: function () {
      var ids = {};
      S.runs.forEach(function (r) { ids[r.id] = [r.id + ' (' + r.state + ')']; });
      if (!S.sel.a && S.runs.length) S.sel.a = S.runs[Math.min(1, S.runs.length - 1)].id;
      if (!S.sel.b && S.runs.length) S.sel.b = S.runs[0].id;
      var pick = function (k) { return function (v) { S.sel[k] = v; S.sel.runs[v] = true; loadSelected().then(VIEWS.compare.update); }; };
      var modes = { runs: ['two runs, test by test'], points: ['two points'] };
      add(view, h('h2', null, 'Compare'),
        h('div', { class: 'card controls' },
          h('label', null, 'Compare', selectOf('cmp-mode', modes, S.sel.mode, function (v) { S.sel.mode = v; VIEWS.compare.update(); })),
          h('label', null, 'Baseline run (A)', selectOf('cmp-a', ids, S.sel.a, pick('a'))),
          h('label', null, 'Run (B)', selectOf('cmp-b', ids, S.sel.b, pick('b'))),
          h('span', { id: 'point-pickers', class: 'controls' })),
        h('div', { class: 'card' }, h('p', { class: 'muted' }, 'Δ is (B - A) / A. Green: better in the metric\'s direction (throughput up, latency down); red: worse.'),
          h('table', { id: 'cmp-table' })),
        defsCard());
      if (S.sel.a) S.sel.runs[S.sel.a] = true;
      if (S.sel.b) S.sel.runs[S.sel.b] = true;
    },
    update: function () {
      var A = S.details[S.sel.a], B = S.details[S.sel.b];
      if ((S.sel.a && !A) || (S.sel.b && !B)) { loadSelected().then(VIEWS.compare.update); return; }
      var tbl = clear(document.getElementById('cmp-table'));
      var pp = clear(document.getElementById('point-pickers'));
      if (!A || !B) { add(tbl, h('tr', null, h('td', { class: 'muted' }, 'Two runs are needed.'))); return; }
      if (S.sel.mode === 'points') {
        var opts = function (d) {
          var o = {};
          (d.test_list || []).forEach(function (t) { (t.points || []).forEach(function (p) { o[t.id + '|' + p.concurrency] = [shortName(t) + ' c=' + p.concurrency]; }); });
          return o;
        };
        var oa = opts(A), ob = opts(B);
        if (!oa[S.sel.pa]) S.sel.pa = Object.keys(oa)[0] || '';
        if (!ob[S.sel.pb]) S.sel.pb = Object.keys(ob)[0] || '';
        add(pp, h('label', null, 'Point A', selectOf('cmp-pa', oa, S.sel.pa, function (v) { S.sel.pa = v; VIEWS.compare.update(); })),
          h('label', null, 'Point B', selectOf('cmp-pb', ob, S.sel.pb, function (v) { S.sel.pb = v; VIEWS.compare.update(); })));
        var find = function (d, key) {
          var k = key.split('|'), c = Number(k.pop()), id = k.join('|');
          var t = (d.test_list || []).filter(function (x) { return x.id === id; })[0];
          return t && (t.points || []).filter(function (p) { return p.concurrency === c; })[0];
        };
        var pa = find(A, S.sel.pa), pb = find(B, S.sel.pb);
        add(tbl, h('tr', null, ['Metric', 'A', 'B', 'Δ'].map(function (x) { return h('th', { class: x === 'Metric' ? '' : 'num' }, x); })));
        if (!pa || !pb) return;
        var ma = pointMetrics(pa), mb = pointMetrics(pb);
        Object.keys(Object.assign({}, ma, mb)).sort().forEach(function (m) {
          add(tbl, h('tr', null, h('td', { class: 'mono' }, m), h('td', { class: 'num' }, fmt(ma[m])), h('td', { class: 'num' }, fmt(mb[m])), deltaCell(ma[m], mb[m], m)));
        });
        return;
      }
      add(tbl, h('tr', null, h('th', null, 'Test'), h('th', { class: 'num' }, 'c'), h('th', null, 'Metric'),
        h('th', { class: 'num' }, 'A'), h('th', { class: 'num' }, 'B'), h('th', { class: 'num' }, 'Δ')));
      var tb = {};
      (B.test_list || []).forEach(function (t) { tb[t.id] = t; });
      var n = 0;
      (A.test_list || []).forEach(function (ta) {
        var t2 = tb[ta.id];
        if (!t2) return;
        (ta.points || []).forEach(function (p) {
          var q = (t2.points || []).filter(function (x) { return x.concurrency === p.concurrency; })[0];
          if (!q) return;
          var ma = pointMetrics(p), mb = pointMetrics(q);
          CMP_METRICS.forEach(function (m) {
            if (ma[m] == null && mb[m] == null) return;
            n++;
            add(tbl, h('tr', null, h('td', { class: 'mono' }, shortName(ta)), h('td', { class: 'num' }, p.concurrency), h('td', { class: 'mono' }, m),
              h('td', { class: 'num' }, fmt(ma[m])), h('td', { class: 'num' }, fmt(mb[m])), deltaCell(ma[m], mb[m], m)));
          });
        });
        if (ta.verdict && t2.verdict && ta.verdict !== t2.verdict) {
          add(tbl, h('tr', null, h('td', { class: 'mono' }, shortName(ta)), h('td'), h('td', null, 'verdict'),
            h('td', null, ta.verdict), h('td', null, t2.verdict), h('td', { class: t2.verdict === 'PASSED' ? 'better' : 'worse' }, t2.verdict === 'PASSED' ? 'fixed' : 'broke')));
        }
      });
      if (!n) add(tbl, h('tr', null, h('td', { colspan: 6, class: 'muted' }, 'No perf result of the same test and concurrency in both runs; compare two points instead.')));
    },
  };

  window.addEventListener('hashchange', route);
  loadRuns().then(function () { connect(); route(); }).catch(function (e) { add(view, h('p', { class: 'worse' }, String(e))); });
  window.disaggbench = { state: S, charts: function () { return charts; } };
})();
