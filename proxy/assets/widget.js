/*!
 * mindshop shopping assistant widget 1.0.0, served by the edge at /v1/widget.js.
 *
 *   <script src="https://EDGE/v1/widget.js"></script>
 *   <script>new RAGAssistant({ merchantId: 'acme', apiKey: 'pk_live_…' });</script>
 *
 * Plain ES2020, no dependencies, no build step. Everything it draws lives in an open shadow
 * root; it never throws into the host page and never writes server or shopper text as HTML.
 * Guide: docs/widget.md.
 */
(function () {
'use strict';
if (typeof window === 'undefined' || typeof document === 'undefined') return;
if (window.RAGAssistant && window.RAGAssistant.version) return; // loaded twice: keep the first

// ==== Load context, captured while this script runs: where it came from and when it started.

const VERSION = '1.0.0';
const POSITIONS = ['bottom-right', 'bottom-left', 'top-right', 'top-left'];
const now = () => (window.performance ? performance.now() : Date.now());
const EXEC_START = now();
const SCRIPT_SRC = (() => {
  try {
    const script = document.currentScript || [...document.querySelectorAll('script[src*="/v1/widget.js"]')].pop();
    return (script && script.src) || '';
  } catch (_) { return ''; }
})();
const SCRIPT_ORIGIN = (() => { try { return new URL(SCRIPT_SRC).origin; } catch (_) { return ''; } })();
let memoryUid = null; // the anonymous shopper id when localStorage is unusable
let loadReported = false; // at most one load report per page load

/** Milliseconds since the widget.js fetch started (resource timing), else since it ran. */
function loadMs() {
  let start = EXEC_START;
  try {
    const entry = performance.getEntriesByType('resource').find((e) => e.name === SCRIPT_SRC);
    if (entry) start = entry.startTime;
  } catch (_) { /* no resource timing */ }
  return Math.max(0, Math.round(now() - start));
}

// ==== Helpers: console, DOM building (text goes in as textContent only), storage, colours, prices.

function say(level, ...args) {
  try { console[level]('[mindshop]', ...args); } catch (_) { /* no console */ }
}

/** An element: `text` sets textContent, `on…` adds a listener, other keys are attributes. */
function h(tag, attrs, children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of [].concat(children || [])) if (child) el.append(child);
  return el;
}

function chatIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  const path = document.createElementNS(ns, 'path');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  path.setAttribute('d', 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z');
  svg.append(path);
  return svg;
}

/** Web storage that never throws: get (no value), set (a string) or remove (null). */
function storage(kind, key, value) {
  try {
    if (value === undefined) return window[kind].getItem(key);
    if (value === null) window[kind].removeItem(key);
    else window[kind].setItem(key, value);
    return true;
  } catch (_) {
    return value === undefined ? null : false;
  }
}

/** The anonymous shopper id, kept in localStorage `mindshop_uid` (else in memory). */
function anonymousUid() {
  const stored = storage('localStorage', 'mindshop_uid');
  if (stored) return stored;
  if (!memoryUid) {
    let random;
    try { random = crypto.randomUUID(); } catch (_) { random = Date.now().toString(36) + Math.random().toString(36).slice(2); }
    memoryUid = 'anon_' + random;
    storage('localStorage', 'mindshop_uid', memoryUid);
  }
  return memoryUid;
}

function isHttp(url) {
  try { return typeof url === 'string' && /^https?:$/.test(new URL(url, location.href).protocol); } catch (_) { return false; }
}

/** Black or white text, whichever contrasts more with a '#rgb' or '#rrggbb' colour (WCAG). */
function textOn(hex) {
  const full = hex.length === 4 ? hex.replace(/\w/g, '$&$&') : hex;
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(full.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) ? '#000000' : '#ffffff';
}

function formatPrice(price) {
  for (const locale of [document.documentElement.lang || undefined, undefined]) {
    try { return new Intl.NumberFormat(locale, { style: 'currency', currency: 'USD' }).format(price); } catch (_) { /* bad lang */ }
  }
  return '$' + price.toFixed(2);
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ==== Options: defaults and checks. Every problem names its option; any problem stops rendering.

function readOptions(options) {
  const errors = [];
  const o = options && typeof options === 'object' ? options : {};
  if (o !== options) errors.push('options: pass an object, e.g. new RAGAssistant({ merchantId, apiKey })');
  for (const name of ['theme', 'behavior', 'integration']) {
    if (o[name] != null && typeof o[name] !== 'object') errors.push(`${name} must be an object`);
  }
  const theme = o.theme || {};
  const behavior = o.behavior || {};
  const integration = o.integration || {};
  const pick = (value, name, type, fallback) => {
    if (value == null) return fallback;
    if (typeof value === type) return value;
    errors.push(`${name} must be a ${type}`);
    return fallback;
  };

  const { merchantId, apiKey } = o;
  if (!merchantId) errors.push("merchantId is required (your merchant id, e.g. 'acme')");
  else if (typeof merchantId !== 'string' || !/^[\w-]{1,64}$/.test(merchantId)) errors.push('merchantId must be 1 to 64 letters, digits, - or _');
  if (!apiKey) errors.push("apiKey is required (a publishable key, 'pk_live_…' or 'pk_test_…')");
  else if (typeof apiKey !== 'string' || !apiKey.startsWith('pk_')) {
    errors.push(String(apiKey).startsWith('sk_')
      ? 'apiKey is a secret key (sk_…): never put it in a web page; revoke it and use a publishable pk_ key'
      : "apiKey must be a publishable key starting with 'pk_'");
  } else if (!/^pk_\w+$/.test(apiKey)) errors.push('apiKey must be the key exactly as created: pk_ then letters, digits and _');
  let base = o.apiBaseUrl || SCRIPT_ORIGIN;
  if (!base) errors.push('apiBaseUrl is required when widget.js is not loaded by <script src> (the edge, e.g. https://edge.example.com)');
  else if (typeof base !== 'string' || !/^https?:\/\/[^/]/i.test(base) || !isHttp(base)) errors.push('apiBaseUrl must be an absolute http(s) URL, e.g. https://edge.example.com');
  else base = base.replace(/\/+$/, '');

  const primary = pick(theme.primaryColor, 'theme.primaryColor', 'string', '#007bff').trim();
  if (!/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(primary)) errors.push(`theme.primaryColor must be a hex colour such as '#007bff' (got ${JSON.stringify(primary)})`);
  const position = theme.position == null ? 'bottom-right' : theme.position;
  if (!POSITIONS.includes(position)) errors.push(`theme.position must be one of ${POSITIONS.join(', ')} (got ${JSON.stringify(position)})`);
  const uid = integration.userId;
  const userId = uid == null ? null : String(uid).trim();
  if (userId !== null && (!/^(string|number)$/.test(typeof uid) || !/^[^\u0000-\u001f\u007f]{1,128}$/.test(userId))) {
    errors.push('integration.userId must be 1 to 128 characters without control characters');
  }
  const config = {
    merchantId, apiKey, base, position, primary, userId,
    title: pick(theme.title, 'theme.title', 'string', '') || 'Shopping assistant',
    greeting: pick(behavior.greeting, 'behavior.greeting', 'string', 'Hi! How can I help you today?'),
    placeholder: pick(behavior.placeholder, 'behavior.placeholder', 'string', 'Ask about our products…'),
    autoOpen: pick(behavior.autoOpen, 'behavior.autoOpen', 'boolean', false),
    stream: pick(behavior.stream, 'behavior.stream', 'boolean', true),
    addToCart: pick(integration.addToCartCallback, 'integration.addToCartCallback', 'function', null),
  };
  if (!errors.length) config.onPrimary = textOn(primary);
  return { errors, config };
}

// ==== Styles, scoped to the shadow root. The `:host` rules are !important: inside-out, they beat the
// store's own !important rules, so even `* { display: none !important }` cannot hide the host.

function stylesheet(cfg) {
  const [v, x] = cfg.position.split('-');
  const opposite = { top: 'bottom', bottom: 'top', left: 'right', right: 'left' };
  return `
:host { all: initial !important; display: block !important; position: fixed !important; z-index: 2147483000 !important;
  ${v}: 20px !important; ${opposite[v]}: auto !important; ${x}: 20px !important; ${opposite[x]}: auto !important;
  width: auto !important; height: auto !important; margin: 0 !important; padding: 0 !important; transform: none !important;
  visibility: visible !important; opacity: 1 !important; pointer-events: auto !important;
  --primary: ${cfg.primary}; --on-primary: ${cfg.onPrimary}; color: #1f2328 !important; text-align: left !important;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif !important; }
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
button, textarea { font: inherit; color: inherit; margin: 0; }
button { cursor: pointer; }
:disabled { cursor: not-allowed; opacity: .55; }
:focus { outline: none; }
:focus-visible { outline: 3px solid #1f2328; outline-offset: 2px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.launcher { display: flex; align-items: center; justify-content: center; width: 56px; height: 56px; padding: 0; border: 0;
  border-radius: 50%; background: var(--primary); color: var(--on-primary); box-shadow: 0 4px 14px rgba(0,0,0,.28); transition: transform .15s; }
.launcher:hover { transform: scale(1.06); }
.launcher:focus-visible { outline-offset: 3px; box-shadow: 0 0 0 3px #fff; }
.launcher svg { width: 26px; height: 26px; fill: currentColor; }
.panel { position: absolute; ${v}: 68px; ${x}: 0; display: flex; flex-direction: column; width: min(380px, calc(100vw - 40px));
  height: min(560px, calc(100vh - 110px)); overflow: hidden; background: #fff; border-radius: 12px;
  box-shadow: 0 12px 40px rgba(0,0,0,.28); animation: pop .16s ease-out; }
@keyframes pop { from { opacity: 0; transform: translateY(${v === 'bottom' ? 8 : -8}px); } }
.header { display: flex; align-items: center; gap: 8px; padding: 10px 10px 10px 16px; background: var(--primary); color: var(--on-primary); }
.title { flex: 1; margin: 0; font-size: 16px; font-weight: 600; }
.close { width: 32px; height: 32px; padding: 0; border: 0; border-radius: 6px; background: none; font-size: 22px; line-height: 1; }
.close:focus-visible { outline-color: var(--on-primary); outline-offset: 0; }
.messages { flex: 1; display: flex; flex-direction: column; gap: 8px; padding: 14px; overflow-y: auto; background: #fafbfc; }
.message { max-width: 88%; padding: 8px 12px; border-radius: 14px; white-space: pre-wrap; overflow-wrap: anywhere; }
.message.user { align-self: flex-end; background: var(--primary); color: var(--on-primary); }
.message.assistant { align-self: flex-start; background: #eef0f3; }
.text { margin: 0; }
.text:empty { display: none; }
.products { display: flex; flex-direction: column; gap: 8px; margin-top: 8px; white-space: normal; }
.product-card { display: flex; gap: 10px; padding: 8px; background: #fff; border: 1px solid #d8dde3; border-radius: 10px; }
.product-card img { flex: none; width: 64px; height: 64px; object-fit: cover; border-radius: 6px; background: #eef0f3; }
.product-info { display: flex; flex-direction: column; align-items: flex-start; gap: 2px; min-width: 0; }
.product-title { font-weight: 600; }
.product-stock { font-size: 13px; color: #1a7f37; }
.product-stock[data-in-stock="false"] { color: #b42318; }
.add-to-cart, .send, .retry { padding: 6px 12px; border: 0; border-radius: 8px; background: var(--primary); color: var(--on-primary); font-weight: 600; }
.add-to-cart, .retry { margin-top: 4px; font-size: 13px; }
.sources { display: flex; flex-wrap: wrap; gap: 4px 10px; margin-top: 8px; font-size: 13px; white-space: normal; }
.source { color: #0b57d0; }
.typing { align-self: flex-start; display: flex; gap: 4px; padding: 12px 14px; border-radius: 14px; background: #eef0f3; }
.dot { width: 7px; height: 7px; border-radius: 50%; background: #6b7280; animation: blink 1.2s infinite; }
.dot:nth-child(2) { animation-delay: .2s; }
.dot:nth-child(3) { animation-delay: .4s; }
@keyframes blink { 0%, 80%, 100% { opacity: .3; } 40% { opacity: 1; } }
.notice { display: flex; align-items: center; justify-content: space-between; gap: 10px; margin: 0 12px 10px; padding: 8px 12px;
  border: 1px solid #e8b04b; border-radius: 8px; background: #fff6e5; color: #4d3300; font-size: 14px; }
.notice[data-state="invalid-key"], .notice[data-state="origin-refused"], .notice[data-state="error"] { border-color: #e5a0a0; background: #fdeeee; color: #7a1212; }
.retry { flex: none; margin: 0; }
.composer { display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px; border-top: 1px solid #e3e6ea; }
.input { flex: 1; min-height: 40px; max-height: 120px; padding: 8px 10px; resize: none; border: 1px solid #b9c0c8; border-radius: 8px;
  background: #fff; color: #1f2328; line-height: 1.4; }
.input::placeholder { color: #6b7280; }
.input:focus-visible { outline-color: var(--primary); outline-offset: 0; }
.send { height: 40px; padding: 0 16px; }
@media (prefers-reduced-motion: reduce) { *, *::before, *::after { animation: none !important; transition: none !important; } }`;
}

// ==== Errors: every failure becomes one of the widget's states, its `kind`: invalid-key,
// origin-refused, network, rate-limited, error; also session-gone (handled) and aborted.

class ApiError extends Error {
  constructor(kind, message, extra) {
    super(message || '');
    Object.assign(this, { kind }, extra);
  }
}

function kindOf(status, code) {
  if (status === 401 || ['API_KEY_REQUIRED', 'INVALID_API_KEY', 'FORBIDDEN', 'MERCHANT_MISMATCH'].includes(code)) return 'invalid-key';
  if (code === 'CORS_ORIGIN_NOT_ALLOWED') return 'origin-refused';
  if (status === 429 || code === 'RATE_LIMIT_EXCEEDED') return 'rate-limited';
  if (status === 410 || code === 'SESSION_ENDED' || code === 'NOT_FOUND') return 'session-gone';
  return 'error';
}

/** The ApiError of an error envelope `{success: false, error, code, requestId}`. */
function envelopeError(status, body, headers) {
  const envelope = body && typeof body === 'object' ? body : {};
  const header = (name) => { try { return headers.get(name); } catch (_) { return null; } };
  const code = typeof envelope.code === 'string' ? envelope.code : null;
  const message = typeof envelope.error === 'string' ? envelope.error : '';
  const kind = kindOf(status, code);
  return new ApiError(kind, message, {
    status, code,
    requestId: header('X-Request-ID') || envelope.requestId || null,
    requiredPermissions: Array.isArray(envelope.requiredPermissions) ? envelope.requiredPermissions : null,
    wait: kind === 'rate-limited' ? waitSeconds(header, message) : 0,
  });
}

/** Seconds to pause after a 429: Retry-After, else X-RateLimit-Reset (Unix seconds), else 60. */
function waitSeconds(header, sentence) {
  const retryAfter = Number(header('Retry-After') || NaN);
  const reset = Number(header('X-RateLimit-Reset') || NaN);
  const said = /(\d+) seconds?/.exec(sentence);
  const secs = Number.isFinite(retryAfter) ? retryAfter
    : Number.isFinite(reset) ? reset - Date.now() / 1000
      : said ? Number(said[1]) : 60;
  return Math.max(1, Math.ceil(secs));
}

/** A success envelope's `data` (a bare object passes as it is). */
const unwrap = (body) => (body && body.success === true && 'data' in body ? body.data : body);

// ==== Server-sent events: `event:` and `data:` lines, a blank line ends an event. Chunks may split
// anywhere, even between \r and \n.

function sseParser(onEvent) {
  let buffer = '';
  let name = '';
  let data = [];
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent(name || 'message', data.join('\n'));
      name = '';
      data = [];
    } else if (text[0] !== ':') { // ':' starts a comment
      const colon = text.indexOf(':');
      const field = colon < 0 ? text : text.slice(0, colon);
      const value = colon < 0 ? '' : text.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
  };
  return {
    push(chunk) {
      buffer += chunk;
      for (let m; (m = /\r\n|\r|\n/.exec(buffer)) && !(m[0] === '\r' && m.index === buffer.length - 1);) {
        line(buffer.slice(0, m.index));
        buffer = buffer.slice(m.index + m[0].length);
      }
    },
    end() {
      buffer.split(/\r\n|\r|\n/).forEach(line);
      buffer = '';
      line('');
    },
  };
}

// ==== Load reporting to POST /v1/widget/load: once per page, never lets an error surface.

function loadUrl(cfg, outcome, reason) {
  const params = { merchantId: cfg.merchantId, outcome };
  if (reason) params.reason = reason;
  params.ms = loadMs();
  return cfg.base + '/v1/widget/load?' + new URLSearchParams(params);
}

function reportLoad(cfg, outcome, reason) {
  if (loadReported) return;
  loadReported = true;
  try {
    const url = loadUrl(cfg, outcome, reason);
    let queued = false;
    try { queued = navigator.sendBeacon(url); } catch (_) { /* no beacon */ }
    if (!queued) fetch(url, { method: 'POST', mode: 'no-cors', keepalive: true, credentials: 'omit' }).catch(() => {});
  } catch (_) { /* reporting never disturbs the page */ }
}

// ==== Messages: an assistant bubble (text, product cards, sources) and its parts.

/** An assistant message; it joins the log with its first content. */
class Bubble {
  constructor(widget) {
    this.widget = widget;
    this.textEl = h('p', { class: 'text' });
    this.el = h('div', { class: 'message assistant' }, this.textEl);
  }
  get text() { return this.textEl.textContent; }
  show() {
    if (!this.el.parentNode) this.widget._append(this.el);
    this.widget._scrollDown();
  }
  setText(text) {
    this.textEl.textContent = typeof text === 'string' ? text : '';
    this.show();
  }
  addText(delta) {
    if (typeof delta === 'string' && delta) { this.textEl.append(delta); this.show(); }
  }
  setProducts(items) {
    this.products = this.replace(this.products, items, 'products', (p) => productCard(p, this.widget._cfg.addToCart));
  }
  setSources(items) {
    this.sources = this.replace(this.sources, items, 'sources', sourceLink);
  }
  /** Replaces a box of cards or links; a list that is absent (not an array) changes nothing. */
  replace(old, items, cls, build) {
    if (!Array.isArray(items)) return old;
    if (old) old.remove();
    const nodes = items.filter((item) => item && typeof item === 'object').map(build).filter(Boolean);
    if (!nodes.length) return null;
    const box = h('div', { class: cls }, nodes);
    if (cls === 'sources') box.prepend(h('span', { class: 'visually-hidden', text: 'Sources:' }));
    this.el.insertBefore(box, cls === 'products' && this.sources ? this.sources : null);
    this.show();
    return box;
  }
  remove() { this.el.remove(); }
}

/** A product card; its button hands the product, as the API sent it, to addToCartCallback. */
function productCard(product, addToCart) {
  const title = product.title == null ? '' : String(product.title);
  const { price, inStock } = product;
  return h('div', { class: 'product-card' }, [
    isHttp(product.imageUrl) && h('img', { src: product.imageUrl, alt: title, loading: 'lazy' }),
    h('div', { class: 'product-info' }, [
      h('div', { class: 'product-title', text: title }),
      typeof price === 'number' && Number.isFinite(price) && h('div', { class: 'product-price', text: formatPrice(price) }),
      typeof inStock === 'boolean' && h('div', {
        class: 'product-stock', 'data-in-stock': String(inStock), text: inStock ? 'In stock' : 'Out of stock',
      }),
      addToCart && h('button', {
        type: 'button', class: 'add-to-cart', text: 'Add to cart',
        onclick: () => {
          try {
            const result = addToCart(product);
            if (result && typeof result.then === 'function') result.then(null, (err) => say('error', 'addToCartCallback failed:', err));
          } catch (err) { say('error', 'addToCartCallback threw:', err); }
        },
      }),
    ]),
  ]);
}

function sourceLink(source) {
  const label = String(source.title || source.url || '');
  if (!label) return null;
  return isHttp(source.url)
    ? h('a', { class: 'source', href: source.url, target: '_blank', rel: 'noopener noreferrer', text: label })
    : h('span', { class: 'source', text: label });
}

// ==== The widget.

class RAGAssistant {
  constructor(options) {
    this._timers = new Set();
    this._queue = Promise.resolve();
    this._blockedUntil = 0; // rate limited until then (ms)
    this._userMessages = 0;
    this._abort = window.AbortController ? new AbortController() : null;
    this._mounted = new Promise((resolve) => { this._resolveMounted = resolve; });
    try {
      const { errors, config } = readOptions(options);
      if (errors.length) {
        say('error', 'Invalid RAGAssistant options; the widget was not rendered:\n  - ' + errors.join('\n  - '));
        return;
      }
      this._cfg = config;
      this._uid = config.userId || anonymousUid();
      if (location.protocol === 'https:' && config.base.startsWith('http:')) {
        say('warn', `apiBaseUrl ${config.base} is http:// on an https page: browsers block it as mixed content. Use an https edge.`);
      }
      if (document.body) this._mount();
      else document.addEventListener('DOMContentLoaded', (this._onReady = () => this._mount()));
    } catch (err) {
      say('error', 'The widget could not start:', err);
    }
  }

  // ---- Public methods; none of them throws ----

  open() {
    this._try(() => (this._panel ? this._setOpen(true, true) : (this._wantOpen = true)));
  }

  close() {
    this._try(() => {
      this._wantOpen = false;
      if (!this._panel || !this._isOpen) return;
      const hadFocus = !!this._root.activeElement;
      this._setOpen(false);
      if (hadFocus) this._launcher.focus();
    });
  }

  toggle() {
    this._try(() => (this._isOpen ? this.close() : this.open()));
  }

  /** Sends `text` as the shopper; resolves with the answer object, or null if there is none. */
  send(text) {
    const query = typeof text === 'string' ? text.trim() : '';
    if (!this._cfg || this._destroyed || !query) return Promise.resolve(null);
    const run = () => this._send(query, false).catch((err) => { say('error', 'send failed:', err); return null; });
    return (this._queue = this._queue.then(run, run));
  }

  destroy() {
    this._try(() => {
      if (this._destroyed) return;
      this._destroyed = true;
      if (this._onReady) document.removeEventListener('DOMContentLoaded', this._onReady);
      if (this._abort) this._abort.abort();
      this._timers.forEach(clearInterval);
      if (this._host) this._host.remove();
      this._host = this._root = this._panel = null;
      this._resolveMounted(false);
    });
  }

  _try(fn) {
    try { fn(); } catch (err) { say('error', 'Unexpected error:', err); }
  }

  // ---- Rendering: host element, shadow root, launcher and panel ----

  _mount() {
    const cfg = this._cfg;
    if (this._destroyed || this._host) return;
    const id = 'mindshop-assistant-' + cfg.merchantId;
    if (document.getElementById(id)) {
      say('error', `A widget for merchant "${cfg.merchantId}" is already on this page; destroy() it before creating another.`);
      this._resolveMounted(false);
      return;
    }
    const host = h('div', { id, 'data-mindshop-widget': true });
    const root = host.attachShadow({ mode: 'open' });
    this._launcher = h('button', {
      type: 'button', class: 'launcher', 'aria-label': 'Open shopping assistant', 'aria-expanded': 'false',
      'aria-controls': 'panel', onclick: () => this.toggle(),
    }, chatIcon());
    this._log = h('div', { class: 'messages', role: 'log', 'aria-live': 'polite' });
    this._input = h('textarea', {
      class: 'input', 'aria-label': 'Message', rows: 1, maxlength: 1000, placeholder: cfg.placeholder,
      oninput: () => this._fitInput(),
      onkeydown: (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); this._submit(); }
      },
    });
    this._sendButton = h('button', { type: 'submit', class: 'send', text: 'Send' });
    this._noticeSlot = h('div', { class: 'notice-slot' });
    this._panel = h('section', { class: 'panel', id: 'panel', role: 'dialog', 'aria-label': cfg.title, hidden: true }, [
      h('header', { class: 'header' }, [
        h('h2', { class: 'title', text: cfg.title }),
        h('button', { type: 'button', class: 'close', 'aria-label': 'Close', text: '×', onclick: () => this.close() }),
      ]),
      this._log,
      this._noticeSlot,
      h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); this._submit(); } }, [this._input, this._sendButton]),
    ]);
    const css = stylesheet(cfg);
    root.append(h('style', { text: css }), this._panel, this._launcher);
    try { // the same rules as a constructed sheet, which a store's CSP style-src does not block
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      root.adoptedStyleSheets = [sheet];
    } catch (_) { /* older browser: the <style> element alone */ }
    // Escape, from the panel or the launcher, closes and gives focus back to the launcher.
    root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this._isOpen) { e.stopPropagation(); this.close(); this._launcher.focus(); }
    });
    if (cfg.greeting) new Bubble(this).setText(cfg.greeting);
    document.body.appendChild(host);
    this._host = host;
    this._root = root;
    this._resolveMounted(true);
    // Auto-open shows the panel without taking the page's focus; open() before mounting does.
    if (cfg.autoOpen || this._wantOpen) this._setOpen(true, !!this._wantOpen);
    this._startup();
  }

  _setOpen(open, focus) {
    this._isOpen = open;
    this._panel.hidden = !open;
    this._launcher.setAttribute('aria-expanded', String(open));
    this._scrollDown();
    if (open && focus) this._input.focus();
  }

  _fitInput() {
    this._input.style.height = 'auto';
    this._input.style.height = Math.min(this._input.scrollHeight + 2, 120) + 'px';
  }

  _scrollDown() {
    if (this._log) this._log.scrollTop = this._log.scrollHeight;
  }

  /** Adds a node to the log, above the typing indicator when it shows. */
  _append(node) {
    this._log.insertBefore(node, this._typing || null);
    this._scrollDown();
  }

  _showTyping(on) {
    if (on && !this._typing) {
      this._typing = h('div', { class: 'typing', 'aria-hidden': 'true' }, [
        h('span', { class: 'dot' }), h('span', { class: 'dot' }), h('span', { class: 'dot' }),
        h('span', { class: 'visually-hidden', text: 'Assistant is typing' }),
      ]);
      this._log.append(this._typing);
      this._scrollDown();
    } else if (!on && this._typing) {
      this._typing.remove();
      this._typing = null;
    }
  }

  /** Shows a state notice (replacing the one shown); `retry` adds a Retry button. */
  _notice(state, text, retry) {
    this._clearNotice();
    this._noticeEl = h('div', { class: 'notice', 'data-state': state, role: 'alert' }, [
      h('span', { class: 'notice-text', text }),
      retry && h('button', { type: 'button', class: 'retry', text: 'Retry', onclick: () => { this._clearNotice(); retry(); } }),
    ]);
    this._noticeSlot.append(this._noticeEl);
    return this._noticeEl;
  }

  _clearNotice(state) {
    if (this._noticeEl && (!state || this._noticeEl.dataset.state === state)) {
      this._noticeEl.remove();
      this._noticeEl = null;
    }
  }

  _updateComposer() {
    if (!this._sendButton) return;
    this._sendButton.disabled = this._disabled || this._busy || this._blockedUntil > Date.now();
    this._input.disabled = !!this._disabled;
  }

  // ---- Networking: every API call goes through _fetch ----

  /** fetch() against the edge; a fetch refused without an answer is classified first. */
  async _fetch(method, path, body, accept) {
    const cfg = this._cfg;
    const init = {
      method, mode: 'cors', credentials: 'omit',
      headers: { 'X-API-Key': cfg.apiKey, 'Content-Type': 'application/json', Accept: accept || 'application/json' },
    };
    if (body) init.body = JSON.stringify(body);
    if (this._abort) init.signal = this._abort.signal;
    try {
      return await fetch(cfg.base + path, init);
    } catch (err) {
      if (this._destroyed || (err && err.name === 'AbortError')) throw new ApiError('aborted');
      if (err instanceof TypeError) throw await this._unreachable();
      throw new ApiError('error', String(err && err.message));
    }
  }

  /**
   * A refused origin and a network failure look alike to a page (a TypeError), so ask
   * /v1/widget/load, which admits any origin: if the edge answers, it refused this page's
   * origin. That probe is also the load report for an origin_refused outcome.
   */
  async _unreachable() {
    try {
      await fetch(loadUrl(this._cfg, 'failed', 'origin_refused'), { method: 'POST', mode: 'cors', credentials: 'omit' });
      loadReported = true;
      return new ApiError('origin-refused', '', { status: 403, code: 'CORS_ORIGIN_NOT_ALLOWED', probed: true });
    } catch (_) {
      return new ApiError(this._destroyed ? 'aborted' : 'network');
    }
  }

  /** The JSON envelope of an answer: its data, or the ApiError it carries. */
  async _read(res) {
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok || !body || body.success === false) throw envelopeError(res.status, body, res.headers);
    return unwrap(body);
  }

  // ---- Sessions: one per tab and merchant, kept in sessionStorage ----

  _storageKey() { return 'mindshop_session_' + this._cfg.merchantId; }

  _forgetSession() {
    this._sessionId = null;
    storage('sessionStorage', this._storageKey(), null);
  }

  /** The session id, resuming or opening a session when needed; callers share one attempt. */
  _session() {
    if (this._sessionId) return Promise.resolve(this._sessionId);
    if (!this._opening) this._opening = this._openSession().finally(() => { this._opening = null; });
    return this._opening;
  }

  async _openSession() {
    const stored = storage('sessionStorage', this._storageKey());
    if (stored) {
      try {
        const data = await this._read(await this._fetch('GET', `/api/sessions/${encodeURIComponent(stored)}/messages`));
        this._sessionId = stored;
        if (!this._userMessages) this._renderHistory(data && data.items);
        return stored;
      } catch (err) {
        if (err.kind !== 'session-gone') throw err;
        this._forgetSession(); // ended or unknown: start a new one
      }
    }
    const body = { userId: this._uid, merchantId: this._cfg.merchantId };
    const data = await this._read(await this._fetch('POST', '/api/chat/sessions', body));
    const id = data && (data.id || data.sessionId);
    if (typeof id !== 'string' || !id) throw new ApiError('error', 'The edge answered without a session id.');
    storage('sessionStorage', this._storageKey(), id);
    return (this._sessionId = id);
  }

  _renderHistory(items) {
    for (const item of Array.isArray(items) ? items : []) {
      if (!item || typeof item.content !== 'string') continue;
      if (item.role === 'user') this._append(h('div', { class: 'message user', text: item.content }));
      if (item.role !== 'assistant') continue;
      const bubble = new Bubble(this);
      bubble.setText(item.content);
      bubble.setProducts(item.recommendations);
      bubble.setSources(item.sources);
    }
  }

  /** Opens the session as soon as the widget shows, so key and origin problems show at once. */
  async _startup() {
    try {
      await this._session();
      reportLoad(this._cfg, 'loaded');
      this._clearNotice();
    } catch (err) {
      if (err.kind === 'aborted' || this._destroyed) return;
      const reasons = { 'invalid-key': 'invalid_key', 'origin-refused': 'origin_refused', network: 'network', 'rate-limited': 'rate_limited' };
      if (!err.probed) reportLoad(this._cfg, 'failed', reasons[err.kind] || 'other'); // a probe was the report
      if (this._panel && !this._isOpen) this._setOpen(true, false); // show why, without taking focus
      this._failed(err, () => this._startup(), true);
    }
  }

  // ---- Asking: POST /api/chat, as JSON or as server-sent events ----

  _submit() {
    const text = this._input.value.trim();
    if (text && !this._busy && !this._disabled && this._blockedUntil <= Date.now()) this.send(text);
  }

  async _send(query, isRetry) {
    if (!(await this._mounted) || this._destroyed) return null;
    if (!this._isOpen) this._setOpen(true, false);
    if (this._disabled) return null;
    if (this._blockedUntil > Date.now()) {
      say('warn', 'Sending is paused by the rate limit; the message was not sent.');
      return null;
    }
    if (!isRetry) {
      this._userMessages++;
      this._append(h('div', { class: 'message user', text: query }));
      if (this._input.value.trim() === query) { this._input.value = ''; this._fitInput(); }
    }
    this._clearNotice();
    this._busy = true;
    this._updateComposer();
    this._showTyping(true);
    let bubble = new Bubble(this);
    try {
      let answer;
      for (let attempt = 0; !answer; attempt++) {
        try {
          answer = await this._ask(await this._session(), query, bubble);
        } catch (err) {
          if (err.kind !== 'session-gone' || attempt > 0) throw err;
          this._forgetSession(); // the stored session ended: start a new one and ask again, once
          bubble.remove();
          bubble = new Bubble(this);
        }
      }
      this._showTyping(false);
      bubble.setText(typeof answer.answer === 'string' ? answer.answer : bubble.text);
      bubble.setProducts(answer.recommendations);
      bubble.setSources(answer.sources);
      return answer;
    } catch (err) {
      if (!bubble.text) bubble.remove();
      this._failed(err, () => this._resend(query));
      return null;
    } finally {
      this._busy = false;
      this._showTyping(false);
      this._updateComposer();
    }
  }

  _resend(query) {
    const run = () => this._send(query, true).catch(() => null);
    this._queue = this._queue.then(run, run);
  }

  /** Asks; resolves with the answer object `{sessionId, answer, recommendations, sources, …}`. */
  async _ask(sessionId, query, bubble) {
    const stream = this._cfg.stream;
    const res = await this._fetch('POST', '/api/chat', { sessionId, query }, stream ? 'text/event-stream' : 'application/json');
    const type = res.headers.get('Content-Type') || '';
    if (!res.ok || !stream || !type.includes('text/event-stream')) {
      const data = await this._read(res);
      if (!data || typeof data !== 'object') throw new ApiError('error', 'The answer was empty.');
      return data;
    }
    let done = null;
    let failure = null;
    const parser = sseParser((name, raw) => {
      if (done || failure) return;
      let data;
      try { data = JSON.parse(raw); } catch (_) { return say('warn', `Ignored a "${name}" event whose data is not JSON.`); }
      if (name === 'context' && data) {
        bubble.setProducts(data.recommendations); // cards show as soon as they arrive
        bubble.setSources(data.sources);
      } else if (name === 'answer' && data && data.delta) {
        this._showTyping(false);
        bubble.addText(data.delta);
      } else if (name === 'done') {
        done = unwrap(data) || {};
      } else if (name === 'error') {
        failure = envelopeError(0, data, res.headers);
      }
    });
    try {
      const decoder = new TextDecoder();
      if (!res.body || !res.body.getReader) parser.push(await res.text());
      else {
        const reader = res.body.getReader();
        for (let chunk; !(chunk = await reader.read()).done;) {
          parser.push(decoder.decode(chunk.value, { stream: true }));
          if (done || failure) { reader.cancel().catch(() => {}); break; }
        }
      }
      parser.push(decoder.decode());
      parser.end();
    } catch (err) {
      if (this._destroyed || (err && err.name === 'AbortError')) throw new ApiError('aborted');
      if (!done) failure = failure || new ApiError('network', 'the answer was cut off');
    }
    if (failure) throw failure;
    if (done && typeof done === 'object') return done;
    if (bubble.text) {
      say('warn', 'The answer stream ended without a "done" event; keeping the text received.');
      return { answer: bubble.text };
    }
    throw new ApiError('error', 'The answer stopped before it was complete.', { requestId: res.headers.get('X-Request-ID') });
  }

  // ---- States: show the notice and tell the developer what to do, in the console ----

  _failed(err, retry, atStartup) {
    if (!err || err.kind === 'aborted' || !this._panel) return;
    const cfg = this._cfg;
    const seen = [err.status || '', err.code || ''].join(' ').trim() || 'an error';
    const detail = `${seen}${err.message ? ` ("${err.message}")` : ''}${err.requestId ? `, request id ${err.requestId}` : ''}`;
    if (err.kind === 'invalid-key') {
      this._disabled = true;
      this._notice('invalid-key', "This assistant isn't available right now.");
      const needs = err.requiredPermissions ? ` The key lacks ${err.requiredPermissions.join(', ')}.` : '';
      const hint = err.code === 'MERCHANT_MISMATCH'
        ? `The merchantId option ("${cfg.merchantId}") is not the merchant of this key: check the apiKey and merchantId options.`
        : `Check the apiKey option (a publishable pk_ key of merchant "${cfg.merchantId}", not revoked) and the key permissions chat:write, sessions:read.`;
      say('error', `The edge refused the API key: ${detail}.${needs} ${hint}`);
    } else if (err.kind === 'origin-refused') {
      this._disabled = true;
      this._notice('origin-refused', "This assistant isn't available on this website right now.");
      say('error', `The edge answered 403 CORS_ORIGIN_NOT_ALLOWED for origin ${location.origin} (the browser reports a CORS error). ` +
        `Add the site's host "${location.hostname}" to the merchant's allowed domains in the portal ` +
        `(PUT /api/merchants/${cfg.merchantId}/settings allowedDomains).`);
    } else if (err.kind === 'network') {
      this._notice('network', "Can't reach the assistant. Check your connection and try again.", retry);
      say('warn', `Cannot reach the edge at ${cfg.base}${err.message ? ` (${err.message})` : ''}; its /v1/widget/load did not answer ` +
        "either. Check the network, the apiBaseUrl option and the page's Content-Security-Policy (connect-src must allow the edge).");
    } else if (err.kind === 'rate-limited') {
      this._rateLimited(err.wait || 60, detail, atStartup ? retry : null);
    } else {
      this._notice('error', err.message || 'Something went wrong. Please try again.', retry);
      say('error', `The request failed: ${detail}. Try again; if it keeps failing, quote the request id to support.`);
    }
    this._updateComposer();
  }

  /** Pauses sending for `seconds` with a countdown, then sends again (or reopens the session). */
  _rateLimited(seconds, detail, reopen) {
    this._blockedUntil = Date.now() + seconds * 1000;
    const text = this._notice('rate-limited', '').firstChild;
    const paint = () => {
      const left = Math.max(1, Math.ceil((this._blockedUntil - Date.now()) / 1000));
      text.textContent = `Too many messages. Try again in ${plural(left, 'second')}.`;
    };
    paint();
    say('warn', `The edge answered ${detail}: sending is paused for ${plural(seconds, 'second')} (Retry-After). ` +
      'Limits count per key and per shopper IP address.');
    clearInterval(this._rateTimer);
    this._timers.add((this._rateTimer = setInterval(() => this._try(() => {
      if (Date.now() < this._blockedUntil) return paint();
      clearInterval(this._rateTimer);
      this._blockedUntil = 0;
      this._clearNotice('rate-limited');
      this._updateComposer();
      if (reopen && !this._sessionId) reopen(); // the session never opened: try again now
    }), 1000)));
  }
}

RAGAssistant.version = VERSION;
window.RAGAssistant = RAGAssistant;
})();
