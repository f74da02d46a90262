/*
 * warren management UI: one page over RabbitMQ's management HTTP API.
 *
 * Plain JavaScript, no framework and no build step: tools/embed_www.py puts
 * this file into the binary as it is.  The UI only speaks the HTTP API
 * (/api/..., RabbitMQ's paths and fields) with basic auth; the credentials
 * live in sessionStorage, so they go when the tab closes.  Pages are routed
 * by the URL's hash (#/queues/VHOST/NAME); lists are paginated, sorted and
 * filtered by the server (?page=&page_size=&name=&use_regex=&sort=&sort_reverse=)
 * so that 10,000 queues cost one page of rows, and when a server answers a
 * list as a plain array the same table does it in the browser instead.
 * /api/overview is polled every 5 s and its rates are kept here, in the
 * browser, as the history the overview charts draw.
 */
'use strict';

const REFRESH_MS = 5000;
const HISTORY_MAX = 720; /* one hour of 5-second samples */
const RATE_KEYS = ['publish', 'deliver_get', 'ack', 'confirm', 'redeliver', 'get', 'deliver'];
const KEY_AUTH = 'warren.auth';
const KEY_USER = 'warren.user';
const KEY_VHOST = 'warren.vhost';
const KEY_HISTORY = 'warren.history';

const S = {
  whoami: null,
  overview: null,
  vhosts: [],
  vhost: sessionStorage.getItem(KEY_VHOST) || '',
  history: [],
  refresh: null, /* the current page's periodic update */
  onOverview: null,
  token: 0, /* bumped on every navigation: stale results are dropped */
  tables: {}, /* table state (page, sort, filter) kept across navigation */
  timer: null,
  lastOverviewOk: true,
};

/* ---------- small helpers ---------- */

const $ = (sel) => document.querySelector(sel);
const enc = encodeURIComponent;

/* h('div.cls', {attr: v, onclick: f}, child, ...): a DOM element. */
function h(tag, attrs, ...kids) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = (el.className ? el.className + ' ' : '') + v;
      else if (k === 'value' && (name === 'input' || name === 'textarea' || name === 'select')) el.value = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  add(el, kids);
  return el;
}

/* Replaces el's children; kids as for h() (nulls skipped, arrays flattened). */
function fill(el, ...kids) {
  el.replaceChildren();
  return add(el, kids);
}

function add(el, kids) {
  for (const k of [kids].flat(Infinity)) {
    if (k == null || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
  return el;
}

const SVGNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, v);
  add(el, kids);
  return el;
}

function getPath(o, path) {
  let v = o;
  for (const p of path.split('.')) {
    if (v == null) return undefined;
    v = v[p];
  }
  return v;
}

const rateOf = (o, key) => getPath(o, key + '_details.rate');

/* 1234 -> "1.2k", 0.25 -> "0.3", 12 -> "12". */
function fmtNum(n) {
  if (n == null || n === '' || Number.isNaN(Number(n))) return '\u2014';
  n = Number(n);
  const a = Math.abs(n);
  const trim = (s) => s.replace(/\.0$/, '');
  if (a < 1000) {
    if (Number.isInteger(n)) return String(n);
    return a < 10 ? trim(n.toFixed(1)) : String(Math.round(n));
  }
  for (const [d, s] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (a >= d) {
      const v = n / d;
      return (Math.abs(v) < 100 ? trim(v.toFixed(1)) : String(Math.round(v))) + s;
    }
  }
  return String(n);
}

/* Counts stay exact up to a million ("12,345"), then compact. */
function fmtCount(n) {
  if (n == null || n === '' || Number.isNaN(Number(n))) return '\u2014';
  n = Number(n);
  return Math.abs(n) < 1e6 ? n.toLocaleString('en-US') : fmtNum(n);
}

function fmtRate(r) {
  if (r == null || Number.isNaN(Number(r))) return '\u2014';
  return fmtNum(r) + '/s';
}

function fmtBytes(b) {
  if (b == null || Number.isNaN(Number(b))) return '\u2014';
  b = Number(b);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return (i === 0 ? String(Math.round(b)) : b.toFixed(b < 10 ? 1 : 0)) + ' ' + units[i];
}

const pad2 = (n) => String(n).padStart(2, '0');
function fmtClock(ms, seconds) {
  const d = new Date(ms);
  return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + (seconds ? ':' + pad2(d.getSeconds()) : '');
}

/* An AMQP timestamp or x-death time (epoch seconds), epoch ms or ISO text. */
function fmtDate(v) {
  if (v == null || v === '') return '\u2014';
  let d;
  if (typeof v === 'number') d = new Date(v < 1e11 ? v * 1000 : v);
  else d = new Date(v);
  if (Number.isNaN(d.getTime())) return String(v);
  return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' +
    pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
}

function fmtValue(v) {
  if (v == null) return '\u2014';
  if (typeof v === 'object') return JSON.stringify(v);
  if (v === '') return '""';
  return String(v);
}

function fmtArgs(obj) {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return '';
  return Object.entries(obj).map(([k, v]) => h('span.tag', {title: k + ' = ' + fmtValue(v)}, k + '=' + fmtValue(v)));
}

const vhostLabel = (v) => v;
const exchangeLabel = (n) => (n === '' ? '(AMQP default)' : n);

/* "name = value" lines (or a JSON object) into an object; numbers, true,
 * false and JSON values are typed, anything else is a string. */
function parseKV(text) {
  text = (text || '').trim();
  if (!text) return {};
  if (text.startsWith('{')) {
    const o = JSON.parse(text);
    if (typeof o !== 'object' || Array.isArray(o)) throw new Error('Expected a JSON object');
    return o;
  }
  const out = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const i = line.indexOf('=');
    if (i < 1) throw new Error('Expected "name = value": ' + line);
    out[line.slice(0, i).trim()] = parseValue(line.slice(i + 1).trim());
  }
  return out;
}

function parseValue(v) {
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^[[{"]/.test(v)) {
    try {
      return JSON.parse(v);
    } catch (e) { /* a plain string after all */ }
  }
  return v;
}

/* ---------- the HTTP API ---------- */

class ApiError extends Error {
  constructor(status, error, reason) {
    super(reason || error || 'HTTP ' + status);
    this.status = status;
    this.error = error;
    this.reason = reason;
  }
  get missing() {
    return this.status === 404 || this.status === 405 || this.status === 501;
  }
}

function reasonText(data) {
  if (data == null) return '';
  if (typeof data === 'string') return data;
  const r = data.reason;
  if (r == null) return data.error || '';
  return typeof r === 'string' ? r : JSON.stringify(r);
}

/* One request; the JSON answer (or null for an empty body).  A 401 that
 * means the credentials are no good logs out with the server's reason;
 * a 401 for one object (e.g. "Not administrator user") is just an error. */
async function api(method, path, body, headers) {
  const hdrs = Object.assign({Authorization: 'Basic ' + (sessionStorage.getItem(KEY_AUTH) || '')}, headers || {});
  /* credentials 'omit': the browser neither adds its own credentials nor
   * pops up its basic-auth dialog on a 401. */
  const init = {method, headers: hdrs, credentials: 'omit', cache: 'no-store'};
  if (body !== undefined) {
    hdrs['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'The server did not answer (' + e.message + ')');
  }
  const text = await r.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = text;
    }
  }
  if (r.status === 401) {
    const reason = reasonText(data);
    if (!reason || reason === 'Login failed' || reason === 'Not management user') {
      logout(reason || 'Login required');
      throw new ApiError(401, 'not_authorized', reason || 'Login required');
    }
  }
  if (!r.ok) throw new ApiError(r.status, data && data.error, reasonText(data) || r.statusText);
  return data;
}

function missingText(e, what) {
  return what + ' is not served by this server yet (HTTP ' + e.status + ').';
}

/* ---------- flash messages and the confirmation dialog ---------- */

function flash(text, isError) {
  const el = h('div.flash' + (isError ? '.error' : ''), {role: isError ? 'alert' : 'status'}, text);
  $('#flash').append(el);
  setTimeout(() => el.remove(), isError ? 9000 : 5000);
}

function flashError(e) {
  flash(e instanceof ApiError ? (e.status ? 'HTTP ' + e.status + ': ' : '') + e.message : String(e.message || e), true);
}

/* Resolves to false (cancelled), true, or the text typed when an input
 * was asked for. */
function confirmBox(title, text, opts) {
  opts = opts || {};
  const dlg = $('#modal');
  $('#modal-title').textContent = title;
  $('#modal-text').textContent = text || '';
  $('#modal-ok').textContent = opts.ok || 'OK';
  $('#modal-ok').className = opts.danger === false ? 'primary' : 'danger';
  const lbl = $('#modal-input-label');
  const inp = $('#modal-input');
  lbl.hidden = !opts.input;
  $('#modal-input-name').textContent = opts.input || '';
  inp.value = opts.inputValue || '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', function once() {
      dlg.removeEventListener('close', once);
      if (dlg.returnValue !== 'ok') resolve(false);
      else resolve(opts.input ? inp.value : true);
    });
    dlg.returnValue = '';
    dlg.showModal();
    (opts.input ? inp : $('#modal-ok')).focus();
  });
}

/* ---------- forms ---------- */

/* fields: [{name, label, type, options, value, placeholder, required, wide, hint}] */
function makeForm(id, fields, submitLabel, onSubmit) {
  const err = h('span.form-error');
  const btn = h('button.primary', {type: 'submit'}, submitLabel);
  const form = h('form.form', {id, novalidate: true});
  for (const f of fields) {
    let input;
    const common = {name: f.name, id: id + '-' + f.name, placeholder: f.placeholder, required: f.required};
    if (f.type === 'select') {
      input = h('select', common, (f.options || []).map((o) => {
        const [v, l] = Array.isArray(o) ? o : [o, o];
        return h('option', {value: v, selected: String(v) === String(f.value ?? '')}, l);
      }));
    } else if (f.type === 'textarea') {
      input = h('textarea', Object.assign({rows: f.rows || 3}, common));
      if (f.value != null) input.value = f.value;
    } else if (f.type === 'checkbox') {
      input = h('input', Object.assign({type: 'checkbox'}, common));
      input.checked = !!f.value;
      form.append(h('label.field.check', null, input, f.label));
      continue;
    } else {
      input = h('input', Object.assign({type: f.type || 'text', list: f.list, min: f.min}, common));
      if (f.value != null) input.value = f.value;
    }
    form.append(h('label.field' + (f.wide ? '.wide' : f.half ? '.half' : ''), null, f.label, input, f.hint ? h('span.hint', null, f.hint) : null));
  }
  form.append(h('div.buttons', null, btn, err));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const values = {};
    for (const f of fields) {
      const el = form.elements[f.name];
      values[f.name] = f.type === 'checkbox' ? el.checked : el.value;
      if (f.required && !String(values[f.name]).trim()) {
        err.textContent = f.label + ' is required.';
        el.focus();
        return;
      }
    }
    btn.disabled = true;
    try {
      await onSubmit(values, form);
    } catch (e) {
      err.textContent = e instanceof ApiError ? (e.status ? 'HTTP ' + e.status + ': ' : '') + e.message : e.message;
    } finally {
      btn.disabled = false;
    }
  });
  return form;
}

const panel = (title, ...kids) => h('section.panel', null, h('h2', null, title), kids);
const foldPanel = (title, id, ...kids) => h('details.panel', {id}, h('summary', null, title), kids);

function kvTable(rows) {
  return h('table.kv', null, h('tbody', null, rows.filter(Boolean).map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, v)))));
}

function simpleTable(cols, rows, empty) {
  return h('div.table-scroll', null, h('table.grid', null,
    h('thead', null, h('tr', null, cols.map((c) => h('th', {class: c.num ? 'num' : null}, c.label)))),
    h('tbody', null, rows.length ? rows.map((r) => h('tr', null, cols.map((c) => h('td', {class: c.num ? 'num' : c.cls}, c.render ? c.render(r) : fmtValue(getPath(r, c.key)))))) :
      h('tr', null, h('td.empty', {colspan: cols.length}, empty || 'Nothing here.')))));
}

/* ---------- lists: paginated by the server ---------- */

function localPage(data, st, opts) {
  let rows = data;
  const total = rows.length;
  const key = opts.nameKey || 'name';
  if (st.filter) {
    if (st.regex) {
      let re;
      try {
        re = new RegExp(st.filter);
      } catch (e) {
        throw new ApiError(400, 'bad_request', 'Invalid regular expression');
      }
      rows = rows.filter((r) => re.test(String(getPath(r, key) ?? '')));
    } else {
      rows = rows.filter((r) => String(getPath(r, key) ?? '').includes(st.filter));
    }
  }
  if (st.sort) {
    const k = st.sort;
    rows = rows.slice().sort((a, b) => {
      const x = getPath(a, k), y = getPath(b, k);
      if (typeof x === 'number' || typeof y === 'number') return (x ?? -Infinity) - (y ?? -Infinity);
      return String(x ?? '').localeCompare(String(y ?? ''));
    });
    if (st.reverse) rows.reverse();
  }
  const pages = Math.max(1, Math.ceil(rows.length / st.size));
  const page = Math.min(st.page, pages);
  const items = rows.slice((page - 1) * st.size, page * st.size);
  return {filtered_count: rows.length, item_count: items.length, items, page, page_count: pages, page_size: st.size, total_count: total};
}

/* A sortable, filterable, paginated table over a list endpoint.
 * opts: {path: () => url, columns: [{key, label, sort, render, num}], noun, sort, nameKey, pageSize} */
function dataTable(id, opts) {
  const st = S.tables[id] || (S.tables[id] = {page: 1, size: opts.pageSize || 100, filter: '', regex: false, sort: opts.sort || 'name', reverse: !!opts.reverse});
  const filter = h('input.filter', {type: 'search', placeholder: opts.filterLabel || 'Filter by name', 'aria-label': 'Filter', value: st.filter});
  const regex = h('input', {type: 'checkbox'});
  regex.checked = st.regex;
  const size = h('select', {'aria-label': 'Rows per page'}, [20, 50, 100, 500].map((n) => h('option', {value: n, selected: n === st.size}, n + ' per page')));
  const summary = h('span.summary');
  const pager = h('div.pager');
  const head = h('tr');
  const tbody = h('tbody');
  const table = h('table.grid', {'data-table': id}, h('thead', null, head), tbody);
  const el = h('div.datatable', {id: 'tbl-' + id},
    h('div.toolbar', null, filter, h('label', null, regex, 'Regex'), summary, h('span.spacer'), size, pager),
    h('div.table-scroll', null, table));

  function drawHead() {
    fill(head, ...opts.columns.map((c) => {
      const sortable = c.sort !== false && (c.sort || c.key);
      const sorted = sortable && st.sort === (c.sort || c.key);
      const th = h('th', {class: [c.num ? 'num' : '', sortable ? 'sortable' : '', sorted ? 'sorted' : ''].join(' ').trim() || null,
        'aria-sort': sorted ? (st.reverse ? 'descending' : 'ascending') : null, 'data-key': sortable || null}, c.label,
      sorted ? h('span.arrow', null, st.reverse ? '\u25bc' : '\u25b2') : null);
      if (sortable) {
        th.addEventListener('click', () => {
          const k = c.sort || c.key;
          if (st.sort === k) st.reverse = !st.reverse;
          else {
            st.sort = k;
            st.reverse = !!c.num; /* numbers: biggest first */
          }
          st.page = 1;
          drawHead();
          load();
        });
      }
      return th;
    }));
  }

  let debounce;
  filter.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      st.filter = filter.value;
      st.page = 1;
      load();
    }, 250);
  });
  regex.addEventListener('change', () => {
    st.regex = regex.checked;
    st.page = 1;
    load();
  });
  size.addEventListener('change', () => {
    st.size = Number(size.value);
    st.page = 1;
    load();
  });

  function go(p) {
    st.page = p;
    load();
  }

  function drawPager(env) {
    const pages = env.page_count || 1;
    const b = (label, p, title) => h('button.small', {type: 'button', title, disabled: p < 1 || p > pages || p === env.page, onclick: () => go(p)}, label);
    fill(pager, b('\u00ab', 1, 'First page'), b('\u2039', env.page - 1, 'Previous page'),
      h('span.pages', null, 'Page ' + fmtCount(env.page) + ' of ' + fmtCount(pages)),
      b('\u203a', env.page + 1, 'Next page'), b('\u00bb', pages, 'Last page'));
    const first = env.item_count ? (env.page - 1) * env.page_size + 1 : 0;
    const last = first ? first + env.item_count - 1 : 0;
    const noun = opts.noun || 'items';
    let t = first ? fmtCount(first) + '\u2013' + fmtCount(last) + ' of ' + fmtCount(env.filtered_count) + ' ' + noun : 'No ' + noun;
    if (env.filtered_count !== env.total_count) t += ' (filtered from ' + fmtCount(env.total_count) + ')';
    summary.textContent = t;
  }

  function message(text, cls) {
    fill(tbody, h('tr', null, h('td.empty' + (cls ? '.' + cls : ''), {colspan: opts.columns.length}, text)));
  }

  let seq = 0;
  async function load() {
    const my = ++seq;
    const path = typeof opts.path === 'function' ? opts.path() : opts.path;
    const q = new URLSearchParams({page: st.page, page_size: st.size});
    if (st.filter) {
      q.set('name', st.filter);
      q.set('use_regex', st.regex ? 'true' : 'false');
    }
    if (st.sort) {
      q.set('sort', st.sort);
      q.set('sort_reverse', st.reverse ? 'true' : 'false');
    }
    let env;
    try {
      const data = await api('GET', path + '?' + q);
      if (my !== seq) return;
      env = Array.isArray(data) ? localPage(data, st, opts) : data;
      if (!env || !Array.isArray(env.items)) throw new ApiError(500, 'bad_reply', 'Unexpected reply from ' + path);
    } catch (e) {
      if (my !== seq) return;
      summary.textContent = '';
      fill(pager, );
      el.dataset.state = e.missing ? 'missing' : 'error';
      message(e.missing ? missingText(e, 'GET ' + path) : 'Could not load: ' + e.message, e.missing ? null : 'err');
      return;
    }
    if (env.page_count && st.page > env.page_count && env.item_count === 0 && st.page > 1) {
      st.page = env.page_count;
      return load();
    }
    el.dataset.state = 'ok';
    drawPager(env);
    if (!env.items.length) {
      message(st.filter ? 'Nothing matches the filter.' : opts.empty || 'No ' + (opts.noun || 'items') + ' yet.');
      return;
    }
    fill(tbody, ...env.items.map((row) => h('tr', null, opts.columns.map((c) => {
      let v;
      try {
        v = c.render ? c.render(row) : fmtValue(getPath(row, c.key));
      } catch (e) {
        v = '\u2014';
      }
      return h('td', {class: c.num ? 'num' : c.cls || null}, v);
    }))));
  }

  drawHead();
  message('Loading\u2026');
  load();
  return {el, load};
}

/* ---------- charts: a small hand-written SVG line chart ---------- */

/* A y axis for values up to max: a step of 1, 2 or 5 times a power of ten
 * and at most 5 intervals; whole steps only for counts. */
function yAxis(max, integer) {
  if (!(max > 0)) return integer ? {step: 1, n: 4} : {step: 0.2, n: 5};
  const raw = max / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = 10 * p;
  for (const m of [1, 2, 5]) {
    if (raw <= m * p) {
      step = m * p;
      break;
    }
  }
  if (integer) step = Math.max(1, Math.round(step));
  return {step, n: Math.max(1, Math.ceil(max / step - 1e-9))};
}

/* series: [{label, color, points: [[t_ms, value|null], ...]}] */
function lineChart(series, range, fmt, width, integer) {
  const W = Math.max(320, Math.round(width || 720)), H = 200, L = 58, R = 12, T = 10, B = 24;
  const now = Date.now();
  const t0 = now - range;
  let max = 0, any = false;
  for (const s of series) {
    for (const [t, v] of s.points) {
      if (t >= t0 && v != null) {
        any = true;
        if (v > max) max = v;
      }
    }
  }
  const ax = yAxis(max, integer);
  const top = ax.step * ax.n;
  const x = (t) => L + ((t - t0) / range) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const root = svg('svg', {viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img'});
  const grid = svg('g', {class: 'grid'});
  const axis = svg('g', {class: 'axis'});
  for (let i = 0; i <= ax.n; i++) {
    const v = ax.step * i;
    grid.append(svg('line', {x1: L, x2: W - R, y1: y(v), y2: y(v)}));
    axis.append(svg('text', {x: L - 8, y: y(v) + 4, 'text-anchor': 'end'}, fmt(v)));
  }
  const steps = [10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3];
  const step = steps.find((s) => range / s <= 7) || 3600e3;
  for (let t = Math.ceil(t0 / step) * step; t <= now; t += step) {
    axis.append(svg('text', {x: x(t), y: H - 6, 'text-anchor': 'middle'}, fmtClock(t, step < 60e3)));
    grid.append(svg('line', {x1: x(t), x2: x(t), y1: T, y2: H - B, 'stroke-dasharray': '2 4'}));
  }
  root.append(grid, axis);
  for (const s of series) {
    let d = '';
    let prevT = null;
    for (const [t, v] of s.points) {
      if (t < t0 - 10e3 || v == null) {
        prevT = null;
        continue;
      }
      /* A gap of more than 3 polls (a tab in the background, a restart)
       * breaks the line rather than drawing a slope across it. */
      const cmd = prevT == null || t - prevT > 3 * REFRESH_MS ? 'M' : 'L';
      d += cmd + Math.max(L, x(t)).toFixed(1) + ' ' + y(v).toFixed(1);
      prevT = t;
    }
    /* Dashed series stay visible where they run on top of another
     * (confirm over publish, ack over deliver). */
    if (d) root.append(svg('path', {class: 'series', d, stroke: s.color, 'stroke-dasharray': s.dash}));
  }
  if (!any) root.append(svg('text', {class: 'empty', x: (L + W - R) / 2, y: H / 2, 'text-anchor': 'middle'}, 'Waiting for samples\u2026'));
  return root;
}

function legend(series, fmt) {
  return h('div.legend', null, series.map((s) => {
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    return h('span', {'data-series': s.key}, h('span.sw', {style: 'background:' + s.color}), s.label, h('b', null, fmt(last)));
  }));
}

/* ---------- the overview poll and its history ---------- */

function loadHistory() {
  try {
    const hst = JSON.parse(sessionStorage.getItem(KEY_HISTORY) || '[]');
    const cut = Date.now() - HISTORY_MAX * REFRESH_MS;
    return Array.isArray(hst) ? hst.filter((s) => s && s.t > cut) : [];
  } catch (e) {
    return [];
  }
}

function saveHistory() {
  try {
    sessionStorage.setItem(KEY_HISTORY, JSON.stringify(S.history));
  } catch (e) { /* storage full: keep it in memory only */ }
}

/* One sample: the server's rates (message_stats.X_details.rate) or, when a
 * server gives counters without rates, the rate between two polls. */
function sampleOf(o, prev) {
  const t = Date.now();
  const ms = o.message_stats;
  const qt = o.queue_totals || {};
  const s = {t, c: {}, r: {}, ready: qt.messages_ready ?? null, unacked: qt.messages_unacknowledged ?? null};
  for (const k of RATE_KEYS) {
    const c = ms ? ms[k] : undefined;
    const d = ms ? ms[k + '_details'] : undefined;
    if (typeof c === 'number') s.c[k] = c;
    if (d && typeof d.rate === 'number') s.r[k] = d.rate;
    else if (typeof c === 'number' && prev && typeof prev.c[k] === 'number' && t > prev.t) s.r[k] = Math.max(0, ((c - prev.c[k]) * 1000) / (t - prev.t));
    else s.r[k] = ms ? 0 : null; /* message_stats {} means no traffic yet */
  }
  return s;
}

async function pollOverview() {
  let o;
  try {
    o = await api('GET', '/api/overview');
  } catch (e) {
    setLive(false, e.message);
    return;
  }
  S.overview = o;
  setLive(true);
  S.history.push(sampleOf(o, S.history[S.history.length - 1]));
  if (S.history.length > HISTORY_MAX) S.history.splice(0, S.history.length - HISTORY_MAX);
  saveHistory();
  drawNavCounts();
  if (S.onOverview) S.onOverview(o);
}

function setLive(ok, why) {
  const foot = $('#nav-foot');
  const o = S.overview || {};
  fill(foot, h('div', null, h('span.dot' + (ok ? '' : '.down')), ok ? 'Live, every 5 s' : 'Not reachable'),
    !ok && why ? h('div', null, why) : null,
    o.product_name ? h('div', null, o.product_name + ' ' + (o.product_version || '')) : null,
    o.node ? h('div', null, o.node) : null);
}

/* ---------- navigation and routing ---------- */

const isAdmin = () => !!S.whoami && (S.whoami.tags || []).includes('administrator');
const isPolicymaker = () => isAdmin() || (!!S.whoami && (S.whoami.tags || []).includes('policymaker'));

const ROUTES = [
  {id: 'overview', label: 'Overview', page: pageOverview},
  {id: 'connections', label: 'Connections', page: pageConnections, count: 'connections', group: 'Messaging'},
  {id: 'channels', label: 'Channels', page: pageChannels, count: 'channels', group: 'Messaging'},
  {id: 'exchanges', label: 'Exchanges', page: pageExchanges, count: 'exchanges', group: 'Messaging', detail: pageExchange},
  {id: 'queues', label: 'Queues', page: pageQueues, count: 'queues', group: 'Messaging', detail: pageQueue},
  {id: 'consumers', label: 'Consumers', page: pageConsumers, count: 'consumers', group: 'Messaging'},
  {id: 'users', label: 'Users', page: pageUsers, group: 'Admin', need: isAdmin},
  {id: 'permissions', label: 'Permissions', page: pagePermissions, group: 'Admin', need: isAdmin},
  {id: 'vhosts', label: 'Virtual hosts', page: pageVhosts, group: 'Admin'},
  {id: 'policies', label: 'Policies', page: pagePolicies, group: 'Admin'},
  {id: 'limits', label: 'Limits', page: pageLimits, group: 'Admin'},
  {id: 'definitions', label: 'Definitions', page: pageDefinitions, group: 'Admin', need: isAdmin},
];

const link = (...parts) => '#/' + parts.map(enc).join('/');

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  if (!raw) return ['overview'];
  return raw.split('/').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch (e) {
      return p;
    }
  });
}

function drawNav() {
  const nav = $('#nav');
  fill(nav, );
  let group = null;
  for (const r of ROUTES) {
    if (r.need && !r.need()) continue;
    if (r.group !== group && r.group) {
      nav.append(h('h4', null, r.group));
      group = r.group;
    }
    nav.append(h('a.item', {href: link(r.id), 'data-nav': r.id}, h('span', null, r.label), r.count ? h('span.count', {'data-count': r.count}) : null));
  }
  drawNavCounts();
}

function drawNavCounts() {
  const tot = (S.overview && S.overview.object_totals) || {};
  for (const el of document.querySelectorAll('[data-count]')) {
    const v = tot[el.dataset.count];
    el.textContent = v == null ? '' : fmtNum(v);
  }
}

function markNav(id) {
  for (const a of document.querySelectorAll('#nav a.item')) a.classList.toggle('active', a.dataset.nav === id);
}

function crumbs(...parts) {
  fill($('#crumbs'), ...parts.flatMap((p, i) => {
    const el = Array.isArray(p) ? h('a', {href: p[1]}, p[0]) : h('b', null, p);
    return i ? [h('span.sep', null, ' \u203a '), el] : [el];
  }));
}

async function route() {
  if (!sessionStorage.getItem(KEY_AUTH)) {
    showLogin();
    return;
  }
  const [name, ...args] = parseHash();
  const r = ROUTES.find((x) => x.id === name) || ROUTES[0];
  S.token++;
  S.refresh = null;
  S.onOverview = null;
  const view = $('#view');
  fill(view);
  delete view.dataset.ready;
  view.dataset.page = r.id + (args.length ? '-detail' : '');
  markNav(r.id);
  const fn = args.length >= 2 && r.detail ? r.detail : r.page;
  try {
    await fn(view, args, S.token);
  } catch (e) {
    if (e.status === 401 && !sessionStorage.getItem(KEY_AUTH)) return;
    view.append(h('div.notice.error', null, e.missing ? missingText(e, 'This page') : 'Could not load this page: ' + e.message));
  }
  view.dataset.ready = '1';
}

const alive = (tok) => tok === S.token;

function pageHead(title, sub, ...actions) {
  return h('div.page-head', null, h('div', null, h('h1', null, title), sub ? h('div.sub', null, sub) : null), h('div.actions', null, actions));
}

/* List endpoints, narrowed to the chosen vhost. */
function scoped(all, perVhost) {
  return () => (S.vhost ? perVhost(enc(S.vhost)) : all);
}

const showVhostCol = () => !S.vhost && S.vhosts.length > 1;
const vhostCol = () => (showVhostCol() ? [{key: 'vhost', label: 'Virtual host', cls: 'nowrap'}] : []);

/* ---------- Overview ---------- */

function pageOverview(view, args, tok) {
  crumbs('Overview');
  const rangeSel = h('select', {id: 'chart-range', 'aria-label': 'Chart range'},
    [[60e3, 'Last minute'], [300e3, 'Last 5 minutes'], [900e3, 'Last 15 minutes'], [3600e3, 'Last hour']].map(([v, l]) => h('option', {value: v, selected: v === Number(sessionStorage.getItem('warren.range') || 300e3)}, l)));
  rangeSel.addEventListener('change', () => {
    sessionStorage.setItem('warren.range', rangeSel.value);
    draw(S.overview);
  });
  const cards = h('div.cards', {id: 'totals'});
  const rates = h('div', {id: 'chart-rates'});
  const lengths = h('div', {id: 'chart-lengths'});
  const info = h('div', {id: 'node-info'});
  view.append(pageHead('Overview', null, rangeSel), cards,
    h('div.grid2', null,
      h('section.panel', null, h('div.chart-head', null, h('h2', null, 'Message rates')), rates),
      h('section.panel', null, h('div.chart-head', null, h('h2', null, 'Queued messages')), lengths)),
    h('div', {style: 'height:18px'}),
    panel('Server', info));

  const RATE_SERIES = [
    {key: 'publish', label: 'Publish', color: '#2d6a8f'},
    {key: 'deliver_get', label: 'Deliver / get', color: '#2f9e6a'},
    {key: 'ack', label: 'Ack', color: '#d08c1c', dash: '6 4'},
    {key: 'confirm', label: 'Confirm', color: '#7a5bc7', dash: '6 4'},
  ];
  const LEN_SERIES = [
    {key: 'ready', label: 'Ready', color: '#2d6a8f'},
    {key: 'unacked', label: 'Unacked', color: '#dd6b20', dash: '6 4'},
  ];

  function draw(o) {
    if (!alive(tok)) return;
    const range = Number(rangeSel.value);
    if (o) {
      const t = o.object_totals || {};
      const q = o.queue_totals || {};
      const card = (label, v, href, key) => h(href ? 'a.card' : 'div.card', {href, 'data-total': key}, h('div.label', null, label), h('div.value', null, fmtCount(v)));
      fill(cards, 
        card('Connections', t.connections, link('connections'), 'connections'),
        card('Channels', t.channels, link('channels'), 'channels'),
        card('Exchanges', t.exchanges, link('exchanges'), 'exchanges'),
        card('Queues', t.queues, link('queues'), 'queues'),
        card('Consumers', t.consumers, link('consumers'), 'consumers'),
        card('Messages', q.messages, null, 'messages'),
        card('Ready', q.messages_ready, null, 'messages_ready'),
        card('Unacked', q.messages_unacknowledged, null, 'messages_unacknowledged'));
      const listeners = (o.listeners || []).map((l) => h('span.tag', null, l.protocol + ' ' + l.ip_address + ':' + l.port));
      fill(info, kvTable([
        ['Product', (o.product_name || '') + ' ' + (o.product_version || '')],
        ['RabbitMQ compatibility', o.rabbitmq_version],
        ['Management', o.management_version],
        ['Cluster', o.cluster_name],
        ['Node', o.node],
        listeners.length ? ['Listeners', listeners] : null,
        o.rates_mode ? ['Rates mode', o.rates_mode] : null,
      ]));
    }
    const hist = S.history;
    const rs = RATE_SERIES.map((s) => Object.assign({points: hist.map((p) => [p.t, p.r ? p.r[s.key] ?? null : null])}, s));
    const ls = LEN_SERIES.map((s) => Object.assign({points: hist.map((p) => [p.t, p[s.key]])}, s));
    const noRates = hist.length > 0 && hist.every((p) => !p.r || RATE_SERIES.every((s) => p.r[s.key] == null));
    fill(rates, lineChart(rs, range, fmtRate, rates.clientWidth), legend(rs, fmtRate),
      noRates ? h('p.muted', null, 'This server reports no message rates in /api/overview yet.') : null);
    fill(lengths, lineChart(ls, range, fmtNum, lengths.clientWidth, true), legend(ls, fmtCount));
  }
  S.onOverview = draw;
  draw(S.overview);
}

/* ---------- Connections, channels, consumers ---------- */

function pageConnections(view) {
  crumbs('Connections');
  const t = dataTable('connections', {
    path: scoped('/api/connections', (v) => '/api/vhosts/' + v + '/connections'),
    noun: 'connections',
    columns: [
      ...vhostCol(),
      {key: 'name', label: 'Name', cls: 'wrap', render: (c) => h('span', null, c.user_provided_name ? h('div', null, c.user_provided_name) : null, h('div.mono', null, c.name))},
      {key: 'user', label: 'User'},
      {key: 'state', label: 'State', render: (c) => h('span', {class: 'state-' + c.state}, c.state)},
      {key: 'protocol', label: 'Protocol', render: (c) => [c.protocol, c.ssl ? h('span.tag.on', null, 'TLS') : null]},
      {key: 'client_properties.product', label: 'Client', render: (c) => fmtValue(getPath(c, 'client_properties.product') ?? '') + ' ' + (getPath(c, 'client_properties.version') ?? '')},
      {key: 'channels', label: 'Channels', num: true, render: (c) => fmtCount(c.channels)},
      {key: 'recv_oct_details.rate', label: 'From client', num: true, render: (c) => fmtBytes(rateOf(c, 'recv_oct')) + '/s'},
      {key: 'send_oct_details.rate', label: 'To client', num: true, render: (c) => fmtBytes(rateOf(c, 'send_oct')) + '/s'},
      {key: 'connected_at', label: 'Connected', render: (c) => fmtDate(c.connected_at)},
      {key: '_close', label: '', sort: false, render: (c) => h('button.small.danger', {type: 'button', 'data-close': c.name, onclick: () => closeConnection(c.name, t)}, 'Close')},
    ],
  });
  view.append(pageHead('Connections', 'Open AMQP connections. Closing one sends connection.close (320 CONNECTION_FORCED) with your reason.'), h('section.panel', null, t.el));
  S.refresh = t.load;
}

async function closeConnection(name, table) {
  const reason = await confirmBox('Close connection', name, {input: 'Reason (sent to the client)', inputValue: 'Closed via management UI', ok: 'Close connection'});
  if (reason === false) return;
  try {
    await api('DELETE', '/api/connections/' + enc(name), undefined, reason ? {'X-Reason': reason} : {});
    flash('Connection closed.');
    table.load();
  } catch (e) {
    flashError(e);
  }
}

function pageChannels(view) {
  crumbs('Channels');
  const mode = (c) => [c.confirm ? h('span.tag.on', {title: 'confirm mode'}, 'C') : null, c.transactional ? h('span.tag.on', {title: 'transactional'}, 'T') : null];
  const t = dataTable('channels', {
    path: scoped('/api/channels', (v) => '/api/vhosts/' + v + '/channels'),
    noun: 'channels',
    columns: [
      ...vhostCol(),
      {key: 'name', label: 'Channel', cls: 'wrap', render: (c) => h('span.mono', null, c.name)},
      {key: 'user', label: 'User'},
      {key: 'confirm', label: 'Mode', sort: false, render: mode},
      {key: 'state', label: 'State', render: (c) => h('span', {class: 'state-' + c.state}, c.state)},
      {key: 'prefetch_count', label: 'Prefetch', num: true, render: (c) => fmtCount(c.prefetch_count)},
      {key: 'consumer_count', label: 'Consumers', num: true, render: (c) => fmtCount(c.consumer_count)},
      {key: 'messages_unacknowledged', label: 'Unacked', num: true, render: (c) => fmtCount(c.messages_unacknowledged)},
      {key: 'messages_unconfirmed', label: 'Unconfirmed', num: true, render: (c) => fmtCount(c.messages_unconfirmed)},
      {key: 'message_stats.publish_details.rate', label: 'Publish', num: true, render: (c) => fmtRate(rateOf(c.message_stats || {}, 'publish'))},
      {key: 'message_stats.confirm_details.rate', label: 'Confirm', num: true, render: (c) => fmtRate(rateOf(c.message_stats || {}, 'confirm'))},
      {key: 'message_stats.deliver_get_details.rate', label: 'Deliver / get', num: true, render: (c) => fmtRate(rateOf(c.message_stats || {}, 'deliver_get'))},
      {key: 'message_stats.ack_details.rate', label: 'Ack', num: true, render: (c) => fmtRate(rateOf(c.message_stats || {}, 'ack'))},
    ],
  });
  view.append(pageHead('Channels', 'C: confirm mode, T: transactional.'), h('section.panel', null, t.el));
  S.refresh = t.load;
}

function consumerColumns(withQueue) {
  return [
    ...(withQueue ? [...vhostCol().map((c) => ({key: 'queue.vhost', label: c.label, cls: 'nowrap'})),
      {key: 'queue.name', label: 'Queue', render: (c) => h('a', {href: link('queues', c.queue.vhost, c.queue.name)}, c.queue.name)}] : []),
    {key: 'consumer_tag', label: 'Consumer tag', cls: 'wrap', render: (c) => h('span.mono', null, c.consumer_tag)},
    {key: 'channel_details.name', label: 'Channel', cls: 'wrap', render: (c) => getPath(c, 'channel_details.name') || '\u2014'},
    {key: 'channel_details.user', label: 'User', render: (c) => getPath(c, 'channel_details.user') || '\u2014'},
    {key: 'ack_required', label: 'Ack required', render: (c) => (c.ack_required ? 'yes' : 'no')},
    {key: 'exclusive', label: 'Exclusive', render: (c) => (c.exclusive ? 'yes' : 'no')},
    {key: 'prefetch_count', label: 'Prefetch', num: true, render: (c) => fmtCount(c.prefetch_count)},
    {key: 'active', label: 'Active', render: (c) => (c.active === false ? h('span.tag', null, c.activity_status || 'waiting') : h('span.tag.ok', null, c.activity_status || 'up'))},
    {key: 'arguments', label: 'Arguments', sort: false, render: (c) => fmtArgs(c.arguments)},
  ];
}

function pageConsumers(view) {
  crumbs('Consumers');
  const t = dataTable('consumers', {
    path: scoped('/api/consumers', (v) => '/api/consumers/' + v),
    noun: 'consumers',
    sort: 'queue.name',
    nameKey: 'queue.name',
    filterLabel: 'Filter by queue',
    columns: consumerColumns(true),
  });
  view.append(pageHead('Consumers'), h('section.panel', null, t.el));
  S.refresh = t.load;
}

/* ---------- Exchanges ---------- */

function features(o) {
  return [o.durable ? h('span.tag.on', {title: 'durable'}, 'D') : null,
    o.auto_delete ? h('span.tag', {title: 'auto-delete'}, 'AD') : null,
    o.exclusive ? h('span.tag', {title: 'exclusive'}, 'Excl') : null,
    o.internal ? h('span.tag', {title: 'internal'}, 'I') : null,
    fmtArgs(o.arguments)];
}

function vhostOptions(withAll) {
  const names = S.vhosts.map((v) => v.name);
  return withAll ? [['', 'All']].concat(names.map((n) => [n, n])) : names;
}

const defaultVhost = () => S.vhost || (S.vhosts.find((v) => v.name === '/') ? '/' : (S.vhosts[0] || {}).name || '/');

function pageExchanges(view) {
  crumbs('Exchanges');
  const t = dataTable('exchanges', {
    path: scoped('/api/exchanges', (v) => '/api/exchanges/' + v),
    noun: 'exchanges',
    columns: [
      ...vhostCol(),
      {key: 'name', label: 'Name', render: (x) => h('a', {href: link('exchanges', x.vhost, x.name === '' ? 'amq.default' : x.name)}, exchangeLabel(x.name))},
      {key: 'type', label: 'Type'},
      {key: 'durable', label: 'Features', sort: false, render: features},
      {key: 'policy', label: 'Policy', render: (x) => x.policy || ''},
      {key: 'message_stats.publish_in_details.rate', label: 'Rate in', num: true, render: (x) => fmtRate(rateOf(x.message_stats || {}, 'publish_in'))},
      {key: 'message_stats.publish_out_details.rate', label: 'Rate out', num: true, render: (x) => fmtRate(rateOf(x.message_stats || {}, 'publish_out'))},
    ],
  });
  const form = makeForm('add-exchange', [
    {name: 'vhost', label: 'Virtual host', type: 'select', options: vhostOptions(false), value: defaultVhost()},
    {name: 'name', label: 'Name', required: true},
    {name: 'type', label: 'Type', type: 'select', options: ['direct', 'fanout', 'topic', 'headers', 'x-consistent-hash', 'x-delayed-message'], value: 'direct'},
    {name: 'durable', label: 'Durable', type: 'checkbox', value: true},
    {name: 'auto_delete', label: 'Auto-delete', type: 'checkbox'},
    {name: 'internal', label: 'Internal', type: 'checkbox'},
    {name: 'arguments', label: 'Arguments', type: 'textarea', wide: true, placeholder: 'alternate-exchange = my-ae', hint: 'one "name = value" a line, or a JSON object'},
  ], 'Add exchange', async (v, f) => {
    await api('PUT', '/api/exchanges/' + enc(v.vhost) + '/' + enc(v.name), {type: v.type, durable: v.durable, auto_delete: v.auto_delete, internal: v.internal, arguments: parseKV(v.arguments)});
    flash('Exchange ' + v.name + ' declared.');
    f.elements.name.value = '';
    t.load();
  });
  view.append(pageHead('Exchanges'), h('section.panel', null, t.el), foldPanel('Add a new exchange', 'add-exchange-panel', form));
  S.refresh = t.load;
}

function bindingKeyOf(b) {
  if (b.properties_key != null) return b.properties_key;
  const noArgs = !b.arguments || Object.keys(b.arguments).length === 0;
  return noArgs ? (b.routing_key === '' ? '~' : b.routing_key) : null;
}

async function unbind(b, done) {
  const key = bindingKeyOf(b);
  const ok = await confirmBox('Remove binding', exchangeLabel(b.source) + ' \u2192 ' + b.destination + (b.routing_key ? ' (' + b.routing_key + ')' : ''), {ok: 'Unbind'});
  if (!ok) return;
  try {
    if (key == null) throw new Error('This server gave no properties_key for the binding.');
    const kind = b.destination_type === 'exchange' ? 'e' : 'q';
    await api('DELETE', '/api/bindings/' + enc(b.vhost) + '/e/' + enc(b.source) + '/' + kind + '/' + enc(b.destination) + '/' + enc(key));
    flash('Binding removed.');
    done();
  } catch (e) {
    flashError(e);
  }
}

function bindingsTable(list, side, done) {
  const cols = [
    side === 'source'
      ? {key: 'destination', label: 'To', render: (b) => [h('span.tag', null, b.destination_type), h('a', {href: link(b.destination_type === 'exchange' ? 'exchanges' : 'queues', b.vhost, b.destination)}, b.destination)]}
      : {key: 'source', label: 'From', render: (b) => (b.source === '' ? '(AMQP default)' : h('a', {href: link('exchanges', b.vhost, b.source)}, b.source))},
    {key: 'routing_key', label: 'Routing key', render: (b) => h('span.mono', null, b.routing_key)},
    {key: 'arguments', label: 'Arguments', render: (b) => fmtArgs(b.arguments)},
    {key: '_x', label: '', render: (b) => (b.source === '' ? h('span.muted', null, 'default binding') : h('button.small.danger', {type: 'button', 'data-unbind': b.source + '/' + b.destination + '/' + b.routing_key, onclick: () => unbind(b, done)}, 'Unbind'))},
  ];
  return simpleTable(cols, list, 'No bindings.');
}

function publishForm(id, vhost, exchange, routingKey) {
  return makeForm(id, [
    {name: 'routing_key', label: 'Routing key', value: routingKey || ''},
    {name: 'delivery_mode', label: 'Delivery mode', type: 'select', options: [['1', '1 \u2014 non-persistent'], ['2', '2 \u2014 persistent']], value: '2'},
    {name: 'payload_encoding', label: 'Payload encoding', type: 'select', options: [['string', 'string'], ['base64', 'base64']], value: 'string'},
    {name: 'headers', label: 'Headers', type: 'textarea', half: true, placeholder: 'x-origin = ui', hint: 'one "name = value" a line, or a JSON object'},
    {name: 'properties', label: 'Properties', type: 'textarea', half: true, placeholder: 'content_type = application/json\nmessage_id = 42', hint: 'content_type, correlation_id, message_id, expiration, priority, type, app_id, \u2026'},
    {name: 'payload', label: 'Payload', type: 'textarea', wide: true, rows: 4},
  ], 'Publish message', async (v) => {
    const props = Object.assign({}, parseKV(v.properties), {delivery_mode: Number(v.delivery_mode)});
    const headers = parseKV(v.headers);
    if (Object.keys(headers).length) props.headers = headers;
    for (const k of ['expiration', 'message_id', 'correlation_id', 'type', 'app_id', 'reply_to', 'user_id']) if (k in props) props[k] = String(props[k]);
    const r = await api('POST', '/api/exchanges/' + enc(vhost) + '/' + enc(exchange) + '/publish',
      {properties: props, routing_key: v.routing_key, payload: v.payload, payload_encoding: v.payload_encoding});
    if (r && r.routed === false) flash('Message published, but it was not routed to any queue.', true);
    else flash('Message published.');
  });
}

async function pageExchange(view, args, tok) {
  const [vhost, name0] = args;
  const name = name0 === 'amq.default' ? '' : name0;
  const pathName = name === '' ? 'amq.default' : name;
  crumbs(['Exchanges', link('exchanges')], 'vhost ' + vhost, exchangeLabel(name));
  const base = '/api/exchanges/' + enc(vhost) + '/' + enc(pathName);
  const x = await api('GET', base);
  if (!alive(tok)) return;
  const del = h('button.danger', {type: 'button', id: 'delete-exchange', disabled: name === '' || name.startsWith('amq.'), onclick: async () => {
    if (!(await confirmBox('Delete exchange', exchangeLabel(name) + ' in ' + vhost, {ok: 'Delete'}))) return;
    try {
      await api('DELETE', base);
      flash('Exchange deleted.');
      location.hash = link('exchanges');
    } catch (e) {
      flashError(e);
    }
  }}, 'Delete');
  const details = h('div');
  function drawDetails(e) {
    const st = e.message_stats || {};
    fill(details, kvTable([
      ['Type', e.type], ['Features', features(e)], ['Policy', e.policy || '\u2014'],
      ['Publish in', fmtRate(rateOf(st, 'publish_in'))], ['Publish out', fmtRate(rateOf(st, 'publish_out'))],
    ]));
  }
  drawDetails(x);
  const src = h('div', {id: 'bindings-source'});
  const dst = h('div', {id: 'bindings-destination'});
  async function loadBindings() {
    for (const [el, side] of [[src, 'source'], [dst, 'destination']]) {
      try {
        const list = await api('GET', base + '/bindings/' + side);
        if (!alive(tok)) return;
        fill(el, bindingsTable(list, side, loadBindings));
      } catch (e) {
        fill(el, h('div.notice', null, e.missing ? missingText(e, 'GET ' + base + '/bindings/' + side) : e.message));
      }
    }
  }
  loadBindings();
  const bindForm = makeForm('add-binding', [
    {name: 'kind', label: 'To', type: 'select', options: [['q', 'Queue'], ['e', 'Exchange']], value: 'q'},
    {name: 'destination', label: 'Name', required: true},
    {name: 'routing_key', label: 'Routing key'},
    {name: 'arguments', label: 'Arguments', type: 'textarea', wide: true, placeholder: 'x-match = any'},
  ], 'Bind', async (v, f) => {
    await api('POST', '/api/bindings/' + enc(vhost) + '/e/' + enc(pathName) + '/' + v.kind + '/' + enc(v.destination), {routing_key: v.routing_key, arguments: parseKV(v.arguments)});
    flash('Binding added.');
    f.elements.destination.value = '';
    loadBindings();
  });
  view.append(pageHead(exchangeLabel(name), 'Exchange in virtual host ' + vhost, del),
    panel('Details', details),
    panel('Bindings from this exchange', src, name === '' ? null : h('div', {style: 'margin-top:14px'}, bindForm)),
    panel('Bindings to this exchange', dst),
    foldPanel('Publish message', 'publish-panel', publishForm('publish', vhost, pathName, '')));
  S.refresh = async () => {
    try {
      const e = await api('GET', base);
      if (alive(tok)) drawDetails(e);
    } catch (e) { /* shown on the next navigation */ }
  };
}

/* ---------- Queues ---------- */

function pageQueues(view) {
  crumbs('Queues');
  const ms = (q, k) => fmtRate(rateOf(q.message_stats || {}, k));
  const t = dataTable('queues', {
    path: scoped('/api/queues', (v) => '/api/queues/' + v),
    noun: 'queues',
    columns: [
      ...vhostCol(),
      {key: 'name', label: 'Name', cls: 'wrap', render: (q) => h('a', {href: link('queues', q.vhost, q.name)}, q.name)},
      {key: 'type', label: 'Type'},
      {key: 'durable', label: 'Features', sort: false, render: features},
      {key: 'policy', label: 'Policy', render: (q) => q.policy || ''},
      {key: 'state', label: 'State', render: (q) => h('span', {class: 'state-' + (q.idle_since ? 'idle' : q.state)}, q.idle_since ? 'idle' : q.state)},
      {key: 'messages_ready', label: 'Ready', num: true, render: (q) => fmtCount(q.messages_ready)},
      {key: 'messages_unacknowledged', label: 'Unacked', num: true, render: (q) => fmtCount(q.messages_unacknowledged)},
      {key: 'messages', label: 'Total', num: true, render: (q) => fmtCount(q.messages)},
      {key: 'consumers', label: 'Consumers', num: true, render: (q) => fmtCount(q.consumers)},
      {key: 'message_stats.publish_details.rate', label: 'Incoming', num: true, render: (q) => ms(q, 'publish')},
      {key: 'message_stats.deliver_get_details.rate', label: 'Deliver / get', num: true, render: (q) => ms(q, 'deliver_get')},
      {key: 'message_stats.ack_details.rate', label: 'Ack', num: true, render: (q) => ms(q, 'ack')},
    ],
  });
  const form = makeForm('add-queue', [
    {name: 'vhost', label: 'Virtual host', type: 'select', options: vhostOptions(false), value: defaultVhost()},
    {name: 'name', label: 'Name', required: true},
    {name: 'type', label: 'Type', type: 'select', options: ['classic', 'quorum', 'stream'], value: 'classic'},
    {name: 'durable', label: 'Durable', type: 'checkbox', value: true},
    {name: 'auto_delete', label: 'Auto-delete', type: 'checkbox'},
    {name: 'arguments', label: 'Arguments', type: 'textarea', wide: true, placeholder: 'x-message-ttl = 60000\nx-dead-letter-exchange = dlx', hint: 'one "name = value" a line, or a JSON object'},
  ], 'Add queue', async (v, f) => {
    const a = parseKV(v.arguments);
    if (v.type !== 'classic') a['x-queue-type'] = v.type;
    await api('PUT', '/api/queues/' + enc(v.vhost) + '/' + enc(v.name), {durable: v.durable, auto_delete: v.auto_delete, arguments: a});
    flash('Queue ' + v.name + ' declared.');
    f.elements.name.value = '';
    t.load();
  });
  view.append(pageHead('Queues'), h('section.panel', null, t.el), foldPanel('Add a new queue', 'add-queue-panel', form));
  S.refresh = t.load;
}

/* x-death entries, newest first as the broker keeps them, decoded. */
function deathTable(deaths) {
  return h('div.death', null, h('div.death-title', null, 'Dead-lettered: ' + deaths.map((d) => (d.count || 1) + '\u00d7 ' + d.reason + ' in ' + d.queue).join(', ')),
    simpleTable([
      {key: 'queue', label: 'Queue'},
      {key: 'reason', label: 'Reason', render: (d) => h('span.tag.bad', null, d.reason)},
      {key: 'exchange', label: 'Exchange', render: (d) => exchangeLabel(d.exchange)},
      {key: 'routing-keys', label: 'Routing keys', render: (d) => (d['routing-keys'] || []).join(', ')},
      {key: 'count', label: 'Count', num: true},
      {key: 'time', label: 'Time', render: (d) => fmtDate(d.time)},
      {key: 'original-expiration', label: 'Original expiration', render: (d) => d['original-expiration'] ?? ''},
    ], deaths));
}

function prettyPayload(m, props) {
  if (m.payload_encoding !== 'string') return m.payload;
  const ct = props.content_type || '';
  if (/json/.test(ct) || /^\s*[{[]/.test(m.payload)) {
    try {
      return JSON.stringify(JSON.parse(m.payload), null, 2);
    } catch (e) { /* not JSON after all */ }
  }
  return m.payload;
}

function messageView(m, i) {
  const props = Array.isArray(m.properties) ? {} : m.properties || {};
  const headers = Object.assign({}, props.headers || {});
  const deaths = Array.isArray(headers['x-death']) ? headers['x-death'] : null;
  delete headers['x-death'];
  const plist = Object.entries(props).filter(([k]) => k !== 'headers').map(([k, v]) => [k, k === 'timestamp' ? fmtDate(v) + ' (' + v + ')' : fmtValue(v)]);
  const hlist = Object.entries(headers).map(([k, v]) => [k, fmtValue(v)]);
  return h('div.message', {'data-message': i + 1},
    h('h3', null, 'Message ' + (i + 1), h('span.muted', null, fmtCount(m.payload_bytes) + ' bytes' + (m.payload_encoding === 'base64' ? ', base64' : '') +
      (m.redelivered ? ', redelivered' : '') + ', ' + fmtCount(m.message_count) + ' left in the queue')),
    h('div.cols', null,
      h('div', null, h('h4', null, 'Routing'), kvTable([['Exchange', exchangeLabel(m.exchange)], ['Routing key', m.routing_key], ['Redelivered', m.redelivered ? 'yes' : 'no']])),
      h('div', null, h('h4', null, 'Properties'), plist.length ? kvTable(plist) : h('span.muted', null, 'none')),
      h('div', null, h('h4', null, 'Headers'), hlist.length ? kvTable(hlist) : h('span.muted', null, 'none'))),
    deaths ? deathTable(deaths) : null,
    h('h4', null, 'Payload'), h('pre.payload', null, prettyPayload(m, props)));
}

async function pageQueue(view, args, tok) {
  const [vhost, name] = args;
  crumbs(['Queues', link('queues')], 'vhost ' + vhost, name);
  const base = '/api/queues/' + enc(vhost) + '/' + enc(name);
  const q0 = await api('GET', base);
  if (!alive(tok)) return;

  const purge = h('button', {type: 'button', id: 'purge', onclick: async () => {
    if (!(await confirmBox('Purge queue', 'Remove every ready message from ' + name + '?', {ok: 'Purge'}))) return;
    try {
      await api('DELETE', base + '/contents');
      flash('Queue purged.');
      refresh();
    } catch (e) {
      flashError(e);
    }
  }}, 'Purge messages');
  const del = h('button.danger', {type: 'button', id: 'delete-queue', onclick: async () => {
    if (!(await confirmBox('Delete queue', name + ' in ' + vhost + ', with its messages?', {ok: 'Delete'}))) return;
    try {
      await api('DELETE', base);
      flash('Queue deleted.');
      location.hash = link('queues');
    } catch (e) {
      flashError(e);
    }
  }}, 'Delete queue');

  const cards = h('div.cards', {id: 'queue-totals'});
  const details = h('div', {id: 'queue-details'});
  const consumers = h('div', {id: 'queue-consumers'});
  function draw(q) {
    const st = q.message_stats || {};
    const card = (label, v, small, key) => h('div.card', {'data-total': key}, h('div.label', null, label), h('div.value', null, v, small ? h('small', null, ' ' + small) : null));
    fill(cards, 
      card('Ready', fmtCount(q.messages_ready), null, 'messages_ready'),
      card('Unacked', fmtCount(q.messages_unacknowledged), null, 'messages_unacknowledged'),
      card('Total', fmtCount(q.messages), null, 'messages'),
      card('Bytes', fmtBytes(q.message_bytes), null, 'message_bytes'),
      card('Consumers', fmtCount(q.consumers), null, 'consumers'),
      card('Incoming', fmtRate(rateOf(st, 'publish')), null, 'publish'),
      card('Deliver / get', fmtRate(rateOf(st, 'deliver_get')), null, 'deliver_get'),
      card('Ack', fmtRate(rateOf(st, 'ack')), null, 'ack'));
    const eff = q.effective_policy_definition;
    fill(details, kvTable([
      ['Type', q.type || 'classic'],
      ['State', h('span', {class: 'state-' + q.state}, q.state + (q.idle_since ? ' (idle since ' + fmtDate(q.idle_since) + ')' : ''))],
      ['Features', features(q)],
      ['Policy', q.policy || '\u2014'],
      q.operator_policy ? ['Operator policy', q.operator_policy] : null,
      eff && Object.keys(eff).length ? ['Effective policy', fmtArgs(eff)] : null,
      q.consumer_utilisation != null ? ['Consumer utilisation', Math.round(q.consumer_utilisation * 100) + '%'] : null,
      q.memory != null ? ['Memory', fmtBytes(q.memory)] : null,
      q.node ? ['Node', q.node] : null,
    ]));
    if (Array.isArray(q.consumer_details)) fill(consumers, simpleTable(consumerColumns(false), q.consumer_details, 'No consumers.'));
  }
  draw(q0);
  if (!Array.isArray(q0.consumer_details)) {
    api('GET', '/api/consumers/' + enc(vhost)).then((list) => {
      if (alive(tok)) fill(consumers, simpleTable(consumerColumns(false), list.filter((c) => c.queue && c.queue.name === name), 'No consumers.'));
    }, (e) => fill(consumers, h('div.notice', null, e.missing ? missingText(e, 'GET /api/consumers/' + vhost) : e.message)));
  }
  async function refresh() {
    try {
      const q = await api('GET', base);
      if (alive(tok)) draw(q);
    } catch (e) { /* kept as it was; the next poll tries again */ }
  }

  /* Bindings. */
  const bindings = h('div', {id: 'queue-bindings'});
  async function loadBindings() {
    try {
      const list = await api('GET', base + '/bindings');
      if (alive(tok)) fill(bindings, bindingsTable(list, 'destination', loadBindings));
    } catch (e) {
      fill(bindings, h('div.notice', null, e.missing ? missingText(e, 'GET ' + base + '/bindings') : e.message));
    }
  }
  loadBindings();
  const bindForm = makeForm('bind-queue', [
    {name: 'source', label: 'From exchange', required: true},
    {name: 'routing_key', label: 'Routing key'},
    {name: 'arguments', label: 'Arguments', type: 'textarea', wide: true, placeholder: 'x-match = all'},
  ], 'Bind', async (v, f) => {
    await api('POST', '/api/bindings/' + enc(vhost) + '/e/' + enc(v.source) + '/q/' + enc(name), {routing_key: v.routing_key, arguments: parseKV(v.arguments)});
    flash('Binding added.');
    f.elements.source.value = '';
    loadBindings();
  });

  /* Get messages. */
  const got = h('div', {id: 'got-messages'});
  const getForm = makeForm('get-messages', [
    {name: 'ackmode', label: 'Ack mode', type: 'select', value: 'ack_requeue_true', options: [
      ['ack_requeue_true', 'Nack, requeue'], ['reject_requeue_true', 'Reject, requeue'],
      ['ack_requeue_false', 'Ack (removes them)'], ['reject_requeue_false', 'Reject (dead-letters them)']]},
    {name: 'encoding', label: 'Encoding', type: 'select', value: 'auto', options: [['auto', 'Auto: string if UTF-8, else base64'], ['base64', 'base64']]},
    {name: 'count', label: 'Messages', type: 'number', value: '1', min: '1'},
    {name: 'truncate', label: 'Truncate payload at (bytes)', type: 'number', value: '50000', min: '1'},
  ], 'Get messages', async (v) => {
    const body = {count: Number(v.count) || 1, ackmode: v.ackmode, encoding: v.encoding};
    if (v.truncate) body.truncate = Number(v.truncate);
    const msgs = await api('POST', base + '/get', body);
    fill(got, ...(msgs.length ? msgs.map(messageView) : [h('div.notice', {style: 'margin-top:12px'}, 'The queue is empty.')]));
    refresh();
  });

  /* Move messages (warren). */
  const moveForm = makeForm('move-messages', [
    {name: 'destination', label: 'Destination queue', required: true},
    {name: 'count', label: 'Messages', type: 'number', min: '1', placeholder: 'all'},
  ], 'Move messages', async (v) => {
    const body = {destination: v.destination};
    if (v.count) body.count = Number(v.count);
    const r = await api('POST', base + '/move', body);
    flash('Moved ' + fmtCount(r && r.moved) + ' message(s) to ' + v.destination + '.');
    refresh();
  });

  const dead = h('div', {id: 'dead-letters'});

  view.append(pageHead(name, 'Queue in virtual host ' + vhost, purge, del), cards,
    h('div.grid2', null, panel('Details', details), panel('Consumers', consumers)),
    h('div', {style: 'height:18px'}),
    panel('Bindings', bindings, h('div', {style: 'margin-top:14px'}, bindForm)),
    h('section.panel', {id: 'dead-letters-panel'}, h('h2', null, 'Dead letters', h('span.muted', null, 'dead-lettered messages in this queue, by where they died')), dead),
    foldPanel('Publish message', 'publish-panel', h('p.muted', {style: 'margin-top:0'}, 'Published to the default exchange with this queue\u2019s name as routing key.'), publishForm('publish', vhost, 'amq.default', name)),
    foldPanel('Get messages', 'get-panel', h('p.muted', {style: 'margin-top:0'}, 'Getting messages is destructive for the ack modes that remove them; the requeueing ones mark them redelivered.'), getForm, got),
    foldPanel('Move messages', 'move-panel', h('p.muted', {style: 'margin-top:0'}, 'Move ready messages from this queue to another, keeping their properties and headers.'), moveForm));
  deadLetters(dead, base, vhost, name, tok, refresh);
  S.refresh = refresh;
}

/* The warren extra: GET .../dead-letters groups this queue's dead-lettered
 * messages by x-first-death-queue, reason and exchange; POST .../replay
 * sends a chosen set back where they died (or to a target). */
async function deadLetters(el, base, vhost, name, tok, after) {
  let groups;
  try {
    groups = await api('GET', base + '/dead-letters');
  } catch (e) {
    if (!alive(tok)) return;
    fill(el, h('div.notice', {'data-state': 'missing'}, e.missing ? missingText(e, 'Dead-letter inspection (GET .../dead-letters)') : e.message));
    return;
  }
  if (!alive(tok)) return;
  const reload = () => {
    deadLetters(el, base, vhost, name, tok, after);
    after();
  };
  async function replay(body, what) {
    const ok = await confirmBox('Replay dead letters', what, {ok: 'Replay', danger: false});
    if (!ok) return;
    try {
      const r = await api('POST', base + '/replay', body);
      flash('Replayed ' + fmtCount(r && r.replayed) + ' message(s).');
      reload();
    } catch (e) {
      flashError(e);
    }
  }
  const table = simpleTable([
    {key: 'queue', label: 'Died in queue', render: (g) => h('a', {href: link('queues', vhost, g.queue)}, g.queue)},
    {key: 'reason', label: 'Reason', render: (g) => h('span.tag.bad', null, g.reason)},
    {key: 'exchange', label: 'Exchange', render: (g) => exchangeLabel(g.exchange)},
    {key: 'count', label: 'Messages', num: true, render: (g) => fmtCount(g.count)},
    {key: '_r', label: '', render: (g) => h('button.small', {type: 'button', 'data-replay-group': g.queue + '/' + g.reason,
      onclick: () => replay({reason: g.reason, header: {'x-first-death-queue': g.queue}}, 'Send the ' + fmtCount(g.count) + ' message(s) that died in ' + g.queue + ' (' + g.reason + ') back to ' + g.queue + '?')}, 'Replay to ' + g.queue)},
  ], groups || [], 'No dead-lettered messages in this queue.');
  const form = makeForm('replay', [
    {name: 'count', label: 'Messages', type: 'number', min: '1', placeholder: 'all'},
    {name: 'reason', label: 'Only with reason', type: 'select', value: '', options: [['', 'any'], 'expired', 'rejected', 'maxlen', 'delivery_limit']},
    {name: 'header_name', label: 'Only with header', placeholder: 'name'},
    {name: 'header_value', label: 'equal to', placeholder: 'value'},
    {name: 'target', label: 'Send to', type: 'select', value: '', options: [['', 'the queue each died in'], ['queue', 'a queue'], ['exchange', 'an exchange']]},
    {name: 'target_name', label: 'Queue or exchange name'},
    {name: 'routing_key', label: 'Routing key (exchange)'},
  ], 'Replay', async (v) => {
    const body = {};
    if (v.count) body.count = Number(v.count);
    if (v.reason) body.reason = v.reason;
    if (v.header_name) body.header = {[v.header_name]: parseValue(v.header_value)};
    if (v.target === 'queue') body.target = {queue: v.target_name};
    if (v.target === 'exchange') body.target = {exchange: v.target_name, routing_key: v.routing_key};
    if (v.target && !v.target_name) throw new Error('Name the target ' + v.target + '.');
    const r = await api('POST', base + '/replay', body);
    flash('Replayed ' + fmtCount(r && r.replayed) + ' message(s).');
    reload();
  });
  fill(el, table, h('h3', {style: 'margin:16px 0 10px'}, 'Replay a chosen set'), form);
  el.dataset.state = 'ok';
}

/* ---------- Admin: users, permissions, vhosts, policies, limits, definitions ---------- */

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];

function pageUsers(view) {
  crumbs('Admin', 'Users');
  const t = dataTable('users', {
    path: '/api/users',
    noun: 'users',
    columns: [
      {key: 'name', label: 'Name'},
      {key: 'tags', label: 'Tags', sort: false, render: (u) => [].concat(u.tags || []).filter(Boolean).map((x) => h('span.tag.on', null, x))},
      {key: 'password_hash', label: 'Password', sort: false, render: (u) => (u.password_hash ? 'set' : h('span.muted', null, 'none'))},
      {key: 'hashing_algorithm', label: 'Hash', sort: false, render: (u) => h('span.muted', null, (u.hashing_algorithm || '').replace('rabbit_password_hashing_', ''))},
      {key: '_d', label: '', sort: false, render: (u) => h('button.small.danger', {type: 'button', 'data-delete-user': u.name, disabled: S.whoami && u.name === S.whoami.name,
        onclick: async () => {
          if (!(await confirmBox('Delete user', u.name, {ok: 'Delete'}))) return;
          try {
            await api('DELETE', '/api/users/' + enc(u.name));
            flash('User ' + u.name + ' deleted.');
            t.load();
          } catch (e) {
            flashError(e);
          }
        }}, 'Delete')},
    ],
  });
  const form = makeForm('add-user', [
    {name: 'name', label: 'Username', required: true},
    {name: 'password', label: 'Password', type: 'password'},
    {name: 'tags', label: 'Tags', list: 'tag-list', placeholder: 'management', hint: 'comma separated: ' + TAGS.join(', ')},
  ], 'Add user', async (v, f) => {
    const body = {tags: v.tags.split(',').map((x) => x.trim()).filter(Boolean).join(',')};
    if (v.password) body.password = v.password;
    await api('PUT', '/api/users/' + enc(v.name), body);
    flash('User ' + v.name + ' saved.');
    f.reset();
    t.load();
  });
  view.append(pageHead('Users', 'A user may log in here with one of the tags management, policymaker, monitoring or administrator.'),
    h('section.panel', null, t.el), panel('Add or update a user', form, h('datalist', {id: 'tag-list'}, TAGS.map((x) => h('option', {value: x})))));
}

async function pagePermissions(view, args, tok) {
  crumbs('Admin', 'Permissions');
  const t = dataTable('permissions', {
    path: scoped('/api/permissions', (v) => '/api/vhosts/' + v + '/permissions'),
    noun: 'permissions',
    sort: 'user',
    nameKey: 'user',
    filterLabel: 'Filter by user',
    columns: [
      {key: 'user', label: 'User'},
      {key: 'vhost', label: 'Virtual host'},
      {key: 'configure', label: 'Configure', render: (p) => h('span.mono', null, p.configure)},
      {key: 'write', label: 'Write', render: (p) => h('span.mono', null, p.write)},
      {key: 'read', label: 'Read', render: (p) => h('span.mono', null, p.read)},
      {key: '_d', label: '', sort: false, render: (p) => h('button.small.danger', {type: 'button', onclick: async () => {
        if (!(await confirmBox('Clear permissions', p.user + ' in ' + p.vhost, {ok: 'Clear'}))) return;
        try {
          await api('DELETE', '/api/permissions/' + enc(p.vhost) + '/' + enc(p.user));
          flash('Permissions cleared.');
          t.load();
        } catch (e) {
          flashError(e);
        }
      }}, 'Clear')},
    ],
  });
  let users = [];
  try {
    users = (await api('GET', '/api/users')).map((u) => u.name);
  } catch (e) { /* free text then */ }
  if (!alive(tok)) return;
  const form = makeForm('set-permission', [
    {name: 'user', label: 'User', type: users.length ? 'select' : 'text', options: users, required: true},
    {name: 'vhost', label: 'Virtual host', type: 'select', options: vhostOptions(false), value: defaultVhost()},
    {name: 'configure', label: 'Configure regexp', value: '.*'},
    {name: 'write', label: 'Write regexp', value: '.*'},
    {name: 'read', label: 'Read regexp', value: '.*'},
  ], 'Set permissions', async (v) => {
    await api('PUT', '/api/permissions/' + enc(v.vhost) + '/' + enc(v.user), {configure: v.configure, write: v.write, read: v.read});
    flash('Permissions of ' + v.user + ' in ' + v.vhost + ' set.');
    t.load();
  });
  view.append(pageHead('Permissions'), h('section.panel', null, t.el), panel('Set permissions', form));
}

function pageVhosts(view) {
  crumbs('Admin', 'Virtual hosts');
  const t = dataTable('vhosts', {
    path: '/api/vhosts',
    noun: 'virtual hosts',
    columns: [
      {key: 'name', label: 'Name'},
      {key: 'description', label: 'Description', render: (v) => v.description || ''},
      {key: 'tags', label: 'Tags', sort: false, render: (v) => [].concat(v.tags || []).filter(Boolean).map((x) => h('span.tag', null, x))},
      {key: 'default_queue_type', label: 'Default queue type', render: (v) => v.default_queue_type || ''},
      {key: 'messages_ready', label: 'Ready', num: true, render: (v) => fmtCount(v.messages_ready)},
      {key: 'messages_unacknowledged', label: 'Unacked', num: true, render: (v) => fmtCount(v.messages_unacknowledged)},
      {key: 'message_stats.publish_details.rate', label: 'Publish', num: true, render: (v) => fmtRate(rateOf(v.message_stats || {}, 'publish'))},
      {key: '_d', label: '', sort: false, render: (v) => (isAdmin() ? h('button.small.danger', {type: 'button', 'data-delete-vhost': v.name, onclick: async () => {
        if (!(await confirmBox('Delete virtual host', v.name + ' with every queue, exchange and message in it?', {ok: 'Delete'}))) return;
        try {
          await api('DELETE', '/api/vhosts/' + enc(v.name));
          flash('Virtual host ' + v.name + ' deleted.');
          t.load();
          loadVhosts();
        } catch (e) {
          flashError(e);
        }
      }}, 'Delete') : '')},
    ],
  });
  const form = makeForm('add-vhost', [
    {name: 'name', label: 'Name', required: true},
    {name: 'description', label: 'Description'},
    {name: 'tags', label: 'Tags', placeholder: 'comma separated'},
    {name: 'default_queue_type', label: 'Default queue type', type: 'select', options: ['classic', 'quorum', 'stream'], value: 'classic'},
  ], 'Add virtual host', async (v, f) => {
    await api('PUT', '/api/vhosts/' + enc(v.name), {description: v.description, tags: v.tags, default_queue_type: v.default_queue_type});
    flash('Virtual host ' + v.name + ' created.');
    f.reset();
    t.load();
    loadVhosts();
  });
  view.append(pageHead('Virtual hosts'), h('section.panel', null, t.el), isAdmin() ? panel('Add a virtual host', form) : null);
  S.refresh = t.load;
}

function pagePolicies(view) {
  crumbs('Admin', 'Policies');
  const t = dataTable('policies', {
    path: scoped('/api/policies', (v) => '/api/policies/' + v),
    noun: 'policies',
    columns: [
      {key: 'vhost', label: 'Virtual host'},
      {key: 'name', label: 'Name'},
      {key: 'pattern', label: 'Pattern', render: (p) => h('span.mono', null, p.pattern)},
      {key: 'apply-to', label: 'Apply to'},
      {key: 'definition', label: 'Definition', sort: false, render: (p) => fmtArgs(p.definition)},
      {key: 'priority', label: 'Priority', num: true},
      {key: '_d', label: '', sort: false, render: (p) => (isPolicymaker() ? h('button.small.danger', {type: 'button', 'data-delete-policy': p.name, onclick: async () => {
        if (!(await confirmBox('Delete policy', p.name + ' in ' + p.vhost, {ok: 'Delete'}))) return;
        try {
          await api('DELETE', '/api/policies/' + enc(p.vhost) + '/' + enc(p.name));
          flash('Policy deleted.');
          t.load();
        } catch (e) {
          flashError(e);
        }
      }}, 'Delete') : '')},
    ],
  });
  const form = makeForm('add-policy', [
    {name: 'vhost', label: 'Virtual host', type: 'select', options: vhostOptions(false), value: defaultVhost()},
    {name: 'name', label: 'Name', required: true},
    {name: 'pattern', label: 'Pattern (regexp)', required: true, placeholder: '^orders\\.'},
    {name: 'apply-to', label: 'Apply to', type: 'select', options: ['all', 'queues', 'exchanges'], value: 'all'},
    {name: 'priority', label: 'Priority', type: 'number', value: '0'},
    {name: 'definition', label: 'Definition', type: 'textarea', wide: true, required: true, placeholder: 'max-length = 10000\ndead-letter-exchange = dlx', hint: 'one "key = value" a line, or a JSON object'},
  ], 'Add or update policy', async (v, f) => {
    await api('PUT', '/api/policies/' + enc(v.vhost) + '/' + enc(v.name), {pattern: v.pattern, definition: parseKV(v.definition), priority: Number(v.priority) || 0, 'apply-to': v['apply-to']});
    flash('Policy ' + v.name + ' saved.');
    f.elements.name.value = '';
    t.load();
  });
  view.append(pageHead('Policies'), h('section.panel', null, t.el), isPolicymaker() ? panel('Add or update a policy', form) : null);
  S.refresh = t.load;
}

function limitRows(list, who) {
  const rows = [];
  for (const l of list || []) for (const [k, v] of Object.entries(l.value || {})) rows.push({who: l[who], limit: k, value: v});
  return rows;
}

async function pageLimits(view, args, tok) {
  crumbs('Admin', 'Limits');
  const vbox = h('div', {id: 'vhost-limits'});
  const ubox = h('div', {id: 'user-limits'});
  async function load() {
    for (const [box, path, who, label] of [[vbox, '/api/vhost-limits', 'vhost', 'Virtual host'], [ubox, '/api/user-limits', 'user', 'User']]) {
      try {
        const list = await api('GET', path);
        if (!alive(tok)) return;
        fill(box, simpleTable([
          {key: 'who', label},
          {key: 'limit', label: 'Limit'},
          {key: 'value', label: 'Value', num: true, render: (r) => fmtCount(r.value)},
          {key: '_d', label: '', render: (r) => h('button.small.danger', {type: 'button', onclick: async () => {
            try {
              await api('DELETE', path + '/' + enc(r.who) + '/' + enc(r.limit));
              flash('Limit removed.');
              load();
            } catch (e) {
              flashError(e);
            }
          }}, 'Remove')},
        ], limitRows(list, who), 'No limits set.'));
      } catch (e) {
        fill(box, h('div.notice', null, e.missing ? missingText(e, 'GET ' + path) : e.message));
      }
    }
  }
  load();
  const vform = makeForm('set-vhost-limit', [
    {name: 'vhost', label: 'Virtual host', type: 'select', options: vhostOptions(false), value: defaultVhost()},
    {name: 'limit', label: 'Limit', type: 'select', options: ['max-connections', 'max-queues'], value: 'max-connections'},
    {name: 'value', label: 'Value', type: 'number', required: true, hint: '-1 for no limit'},
  ], 'Set limit', async (v) => {
    await api('PUT', '/api/vhost-limits/' + enc(v.vhost) + '/' + enc(v.limit), {value: Number(v.value)});
    flash('Limit set.');
    load();
  });
  const uform = makeForm('set-user-limit', [
    {name: 'user', label: 'User', required: true},
    {name: 'limit', label: 'Limit', type: 'select', options: ['max-connections', 'max-channels'], value: 'max-connections'},
    {name: 'value', label: 'Value', type: 'number', required: true, hint: '-1 for no limit'},
  ], 'Set limit', async (v) => {
    await api('PUT', '/api/user-limits/' + enc(v.user) + '/' + enc(v.limit), {value: Number(v.value)});
    flash('Limit set.');
    load();
  });
  view.append(pageHead('Limits'), h('div.grid2', null,
    panel('Virtual host limits', vbox, isAdmin() ? h('div', {style: 'margin-top:14px'}, vform) : null),
    panel('User limits', ubox, isAdmin() ? h('div', {style: 'margin-top:14px'}, uform) : null)));
}

function pageDefinitions(view) {
  crumbs('Admin', 'Definitions');
  const scope = () => (S.vhost ? '/api/definitions/' + enc(S.vhost) : '/api/definitions');
  const exportBtn = h('button.primary', {type: 'button', id: 'export-definitions', onclick: async () => {
    try {
      const defs = await api('GET', scope());
      const blob = new Blob([JSON.stringify(defs, null, 2) + '\n'], {type: 'application/json'});
      const a = h('a', {href: URL.createObjectURL(blob), download: 'warren-definitions' + (S.vhost ? '-' + S.vhost.replace(/[^\w.-]+/g, '_') : '') + '-' + new Date().toISOString().slice(0, 10) + '.json'});
      document.body.append(a);
      a.click();
      setTimeout(() => {
        URL.revokeObjectURL(a.href);
        a.remove();
      }, 1000);
      flash('Definitions exported.');
    } catch (e) {
      flashError(e);
    }
  }}, 'Download definitions');
  const file = h('input', {type: 'file', id: 'import-file', accept: '.json,application/json'});
  const importBtn = h('button.primary', {type: 'button', id: 'import-definitions', onclick: async () => {
    const f = file.files && file.files[0];
    if (!f) {
      flash('Choose a definitions file first.', true);
      return;
    }
    try {
      const text = await f.text();
      JSON.parse(text);
      await api('POST', scope(), text);
      flash('Definitions imported from ' + f.name + '.');
      loadVhosts();
    } catch (e) {
      flashError(e);
    }
  }}, 'Upload definitions');
  const where = S.vhost ? 'virtual host ' + S.vhost : 'the whole broker';
  view.append(pageHead('Definitions', 'Users, virtual hosts, permissions, policies, queues, exchanges and bindings as RabbitMQ\u2019s JSON.'),
    h('div.grid2', null,
      panel('Export', h('p.muted', null, 'Downloads the definitions of ' + where + ' (GET ' + scope() + ').'), exportBtn),
      panel('Import', h('p.muted', null, 'Applies a definitions file to ' + where + ' (POST ' + scope() + '); the file is checked whole before anything changes.'),
        h('div.actions', null, file, importBtn))));
}

/* ---------- login, vhosts, start ---------- */

function showLogin(reason) {
  $('#app').hidden = true;
  $('#login').hidden = false;
  const err = $('#login-error');
  err.hidden = !reason;
  err.textContent = reason || '';
  const u = sessionStorage.getItem(KEY_USER);
  if (u && !$('#login-user').value) $('#login-user').value = u;
  ($('#login-user').value ? $('#login-pass') : $('#login-user')).focus();
}

function logout(reason) {
  sessionStorage.removeItem(KEY_AUTH);
  S.whoami = null;
  clearInterval(S.timer);
  S.timer = null;
  showLogin(reason);
}

async function loadVhosts() {
  try {
    S.vhosts = await api('GET', '/api/vhosts');
  } catch (e) {
    S.vhosts = [];
  }
  const sel = $('#vhost-select');
  if (S.vhost && !S.vhosts.some((v) => v.name === S.vhost)) S.vhost = '';
  fill(sel, ...vhostOptions(true).map(([v, l]) => h('option', {value: v, selected: v === S.vhost}, l)));
}

async function start() {
  let who;
  try {
    who = await api('GET', '/api/whoami');
  } catch (e) {
    if (e.status !== 401) showLogin('Could not reach the server: ' + e.message);
    return;
  }
  S.whoami = who;
  $('#login').hidden = true;
  $('#app').hidden = false;
  fill($('#who'), h('b', null, who.name), ' ', [].concat(who.tags || []).map((t) => h('span.tag', null, t)));
  drawNav();
  await loadVhosts();
  clearInterval(S.timer);
  S.timer = setInterval(tick, REFRESH_MS);
  await pollOverview();
  route();
}

async function tick() {
  if (document.hidden) return;
  await pollOverview();
  if (S.refresh && !$('#modal').open) {
    try {
      await S.refresh();
    } catch (e) { /* the page shows its own errors */ }
  }
}

window.__uiErrors = [];
window.addEventListener('error', (e) => window.__uiErrors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => window.__uiErrors.push(String(e.reason && e.reason.message || e.reason)));

document.addEventListener('DOMContentLoaded', () => {
  S.history = loadHistory();
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const user = $('#login-user').value;
    const pass = $('#login-pass').value;
    /* btoa needs Latin-1: encode UTF-8 first. */
    const raw = new TextEncoder().encode(user + ':' + pass);
    sessionStorage.setItem(KEY_AUTH, btoa(String.fromCharCode(...raw)));
    sessionStorage.setItem(KEY_USER, user);
    $('#login-pass').value = '';
    await start();
  });
  $('#logout').addEventListener('click', () => logout('Logged out.'));
  $('#vhost-select').addEventListener('change', (e) => {
    S.vhost = e.target.value;
    sessionStorage.setItem(KEY_VHOST, S.vhost);
    for (const k of Object.keys(S.tables)) S.tables[k].page = 1;
    route();
  });
  window.addEventListener('hashchange', route);
  if (sessionStorage.getItem(KEY_AUTH)) start();
  else showLogin();
});
