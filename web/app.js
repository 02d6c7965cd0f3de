// Cascade live page. Talks only to the server that served it (proto/PROTOCOL.md):
//  - WebSocket v1/ws, channels alerts + cascades: the alert feed and the projection;
//  - GET v1/summary (positions per band, hidden totals, prices), every 2 s and after
//    alerts; GET v1/cascade (the latest projection) every 5 s; GET v1/curves for the
//    chosen asset on demand, again after the book moved (at most every 30 s).
// A read token, when the server wants one, comes from the URL: #token=TOKEN.
// Plain JavaScript, no library: the charts are SVG drawn below.

const BANDS = ["healthy", "warn", "danger", "liquidatable"];
const FEED_MAX = 200;          // rows kept in the alert feed
const SEEN_MAX = 50000;        // seqs remembered to drop repeats after a resume
const SUMMARY_MS = 2000;
const PROJECTION_MS = 5000;
const CURVES_MIN_MS = 30000;
const PALETTE = ["#4f9cf7", "#e5484d", "#e3b341", "#3fb37f", "#b48ef7", "#f0883e",
                 "#36c5d6", "#f778ba", "#9aa4b1", "#c2e05a"];

const hashParams = () => new URLSearchParams(location.hash.slice(1));
const token = hashParams().get("token") || "";

// --- formatting --------------------------------------------------------------------

function fmtUsd(v) {
  if (v == null || !isFinite(v)) return "–";
  const a = Math.abs(v);
  const s = v < 0 ? "-" : "";
  if (a >= 1e9) return `${s}$${(a / 1e9).toFixed(a >= 1e10 ? 1 : 2)}B`;
  if (a >= 1e6) return `${s}$${(a / 1e6).toFixed(a >= 1e7 ? 1 : 2)}M`;
  if (a >= 1e3) return `${s}$${(a / 1e3).toFixed(a >= 1e4 ? 0 : 1)}k`;
  if (a === 0) return "$0";
  return `${s}$${a.toFixed(a >= 100 ? 0 : 2)}`;
}
const fmtCount = (n) => Number(n).toLocaleString("en-US");
const fmtPct = (v, d = 1) => `${(v * 100).toFixed(d)}%`;
const fmtSignedPct = (v, d = 2) => `${v > 0 ? "+" : ""}${(v * 100).toFixed(d)}%`;
// Percent with as many decimals as a tick step needs (or `exact` ones for a value).
function pctFor(v, step, exact, signed) {
  const d = step ? Math.max(0, Math.ceil(-Math.log10(step * 100) - 1e-9)) : exact;
  return signed ? fmtSignedPct(v, d) : fmtPct(v, d);
}
const fmtHf = (v) => (v == null ? "∞" : v.toFixed(3));
function fmtPrice(v) {
  if (v >= 1000) return v.toLocaleString("en-US", { maximumFractionDigits: 0 });
  if (v >= 10) return v.toFixed(2);
  return v.toFixed(4);
}
function clock(ms) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// --- DOM -------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}
const bandChip = (b) => el("span", { class: `band ${b}` }, b);

// --- REST ------------------------------------------------------------------------------

async function getJson(path) {
  const r = await fetch(path, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    cache: "no-store",
  });
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const msg = body && body.error ? body.error.message : r.statusText;
    const e = new Error(`GET ${path}: ${r.status} ${msg}`);
    e.status = r.status;
    throw e;
  }
  return body;
}

// --- SVG charts ---------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

// Ticks at 1, 2 or 5 x 10^k (at least `minStep`) covering [lo, hi] with about `n`
// intervals.
function niceTicks(lo, hi, n, minStep = 0) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(minStep, [1, 2, 5, 10].map((m) => m * mag).find((st) => st >= raw));
  const ticks = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let k = first; k * step <= hi + step * 1e-9; ++k) {
    ticks.push(Number((k * step).toPrecision(12)));  // 0.30000000000000004 -> 0.3
  }
  return { ticks, step, lo: Math.min(lo, ticks[0]), hi: Math.max(hi, ticks[ticks.length - 1]) };
}

// spec: {x: {min, max, format, label, minStep?}, y: {format, min?, max?, pad?},
//        series: [{key, label, color, points: [[x, y]], dash?, area?}],
//        refs: [{label, color, points, dash}], marks: [{x, label, color}], empty: text}
// format(v, step) labels a tick `step` apart from the next; format(v) a value (tooltip).
function drawChart(svg, spec) {
  svg._spec = spec;
  const W = Math.max(svg.clientWidth || svg.parentNode.clientWidth || 600, 200);
  const H = Number(svg.getAttribute("height"));
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const m = { l: 58, r: 14, t: 22, b: 30 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;

  const all = spec.series.flatMap((se) => se.points);
  if (all.length === 0) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty-text" },
                 spec.empty || "no data"));
    return;
  }
  const ys = all.map((p) => p[1]);
  let ylo = spec.y.min != null ? spec.y.min : Math.min(0, ...ys);
  let yhi = spec.y.max != null ? spec.y.max : Math.max(...ys);
  if (spec.y.pad) { const d = (yhi - ylo) * spec.y.pad || Math.abs(yhi) * 0.1 || 0.01; ylo -= d; yhi += d; }
  if (yhi <= ylo) yhi = ylo + (Math.abs(ylo) || 1);
  const yt = niceTicks(ylo, yhi, Math.max(2, Math.round(ph / 45)));
  const xt = niceTicks(spec.x.min, spec.x.max, Math.max(2, Math.round(pw / 80)), spec.x.minStep);
  const X = (v) => m.l + ((v - xt.lo) / (xt.hi - xt.lo)) * pw;
  const Y = (v) => m.t + ph - ((v - yt.lo) / (yt.hi - yt.lo)) * ph;

  const grid = s("g", { class: "grid" });
  for (const t of yt.ticks) {
    grid.append(s("line", { class: "gridline", x1: m.l, x2: m.l + pw, y1: Y(t), y2: Y(t) }));
    grid.append(s("text", { x: m.l - 6, y: Y(t) + 3.5, "text-anchor": "end" }, spec.y.format(t, yt.step)));
  }
  for (const t of xt.ticks) {
    grid.append(s("line", { class: "gridline", x1: X(t), x2: X(t), y1: m.t, y2: m.t + ph }));
    grid.append(s("text", { x: X(t), y: m.t + ph + 13, "text-anchor": "middle" }, spec.x.format(t, xt.step)));
  }
  grid.append(s("line", { class: "axis", x1: m.l, x2: m.l + pw, y1: Y(Math.max(yt.lo, Math.min(0, yt.hi))), y2: Y(Math.max(yt.lo, Math.min(0, yt.hi))) }));
  grid.append(s("line", { class: "axis", x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph }));
  grid.append(s("text", { class: "axis-label", x: m.l + pw, y: H - 3, "text-anchor": "end" }, spec.x.label));
  svg.append(grid);

  const clipId = `clip-${svg.id}`;
  const defs = s("defs");
  const clip = s("clipPath", { id: clipId });
  clip.append(s("rect", { x: m.l, y: m.t - 1, width: pw, height: ph + 2 }));
  defs.append(clip);
  svg.append(defs);
  const plot = s("g", { "clip-path": `url(#${clipId})` });
  for (const r of spec.refs || []) {
    plot.append(s("polyline", {
      class: "series ref", stroke: r.color, "stroke-width": 1, "stroke-dasharray": r.dash || "2 4",
      points: r.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" "),
    }));
  }
  for (const se of spec.series) {
    if (se.points.length === 0) continue;
    const pts = se.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`);
    if (se.area) {
      const y0 = Y(Math.max(yt.lo, 0)).toFixed(1);
      plot.append(s("polygon", {
        class: "area", fill: se.color,
        points: `${X(se.points[0][0]).toFixed(1)},${y0} ${pts.join(" ")} ${X(se.points[se.points.length - 1][0]).toFixed(1)},${y0}`,
      }));
    }
    plot.append(s("polyline", {
      class: "series", stroke: se.color, "stroke-dasharray": se.dash,
      points: pts.join(" "), "data-series": se.key, "data-points": se.points.length,
    }));
  }
  svg.append(plot);
  for (const mk of spec.marks || []) {
    if (mk.x < xt.lo || mk.x > xt.hi) continue;
    svg.append(s("line", { class: "mark", stroke: mk.color, x1: X(mk.x), x2: X(mk.x), y1: m.t, y2: m.t + ph, "data-mark": mk.key }));
    const label = s("text", { class: "mark-label", x: X(mk.x) + 4, y: m.t + 10 }, mk.label);
    label.style.fill = mk.color;  // CSSOM: the page's CSP refuses style attributes
    svg.append(label);
  }

  // Legend along the top.
  const legend = s("g", { class: "legend" });
  let lx = m.l;
  for (const se of [...spec.series, ...(spec.refs || []).filter((r) => r.label)]) {
    legend.append(s("line", { x1: lx, x2: lx + 14, y1: 9, y2: 9, stroke: se.color, "stroke-width": 2, "stroke-dasharray": se.dash }));
    const t = s("text", { x: lx + 18, y: 12.5 }, se.label);
    legend.append(t);
    lx += 26 + se.label.length * 6.2;
  }
  svg.append(legend);

  // Hover: a crosshair and each series' value at the nearest x.
  const cross = s("line", { class: "cross", y1: m.t, y2: m.t + ph, visibility: "hidden" });
  svg.append(cross);
  const hit = s("rect", { x: m.l, y: m.t, width: pw, height: ph, fill: "transparent" });
  svg.append(hit);
  const tip = $("tooltip");
  hit.addEventListener("mousemove", (ev) => {
    const box = svg.getBoundingClientRect();
    const xv = xt.lo + ((ev.clientX - box.left) * (W / box.width) - m.l) / pw * (xt.hi - xt.lo);
    const rows = [];
    let snap = null;
    for (const se of spec.series) {
      if (se.points.length === 0) continue;
      let best = se.points[0];
      for (const p of se.points) if (Math.abs(p[0] - xv) < Math.abs(best[0] - xv)) best = p;
      const last = se.points[se.points.length - 1][0];
      if (xv > last + (xt.hi - xt.lo) * 0.02) continue;
      snap = snap == null ? best[0] : snap;
      const sw = el("span", { class: "sw" });
      sw.style.background = se.color;
      rows.push(el("div", {}, sw, `${se.label}: ${spec.y.format(best[1])}`));
    }
    if (snap == null) { tip.hidden = true; cross.setAttribute("visibility", "hidden"); return; }
    cross.setAttribute("x1", X(snap));
    cross.setAttribute("x2", X(snap));
    cross.setAttribute("visibility", "visible");
    tip.replaceChildren(el("div", {}, `${spec.x.label}: ${spec.x.format(snap)}`), ...rows);
    tip.hidden = false;
    tip.style.left = `${Math.min(ev.clientX + 14, innerWidth - tip.offsetWidth - 8)}px`;
    tip.style.top = `${ev.clientY + 12}px`;
  });
  hit.addEventListener("mouseleave", () => { tip.hidden = true; cross.setAttribute("visibility", "hidden"); });
}

let resizeTimer = 0;
addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const svg of document.querySelectorAll("svg.chart")) if (svg._spec) drawChart(svg, svg._spec);
  }, 100);
});

// --- connection status ---------------------------------------------------------------

function setConn(state, text) {
  $("conn").dataset.state = state;
  $("conn-text").textContent = text;
}

// --- summary: prices, bands, hidden risk ----------------------------------------------

const state = {
  assets: [],             // from GET v1/assets
  reference: {},          // symbol -> configured price
  asset: null,            // the curves' asset
  lastSeq: 0,
  bookMoved: false,       // since the curves were computed
  curvesAt: 0,
};

function renderPrices(prices) {
  const strip = $("prices");
  strip.replaceChildren();
  for (const [sym, p] of Object.entries(prices)) {
    const ref = state.reference[sym];
    const chg = ref ? p / ref - 1 : 0;
    const c = Math.abs(chg) < 5e-5 ? null
      : el("span", { class: `chg ${chg > 0 ? "up" : "down"}` }, fmtSignedPct(chg, 1));
    strip.append(el("span", { class: "price", "data-asset": sym },
                    el("span", { class: "sym" }, sym), fmtPrice(p), c));
  }
}

function bandCell(cell, band) {
  const n = cell ? cell.positions : 0;
  return el("td", { class: `b-${band}${n === 0 ? " zero" : ""}${band === "liquidatable" && n > 0 ? " hot" : ""}`,
                    "data-band": band, "data-positions": n },
            el("span", { class: "n" }, fmtCount(n)),
            el("span", { class: "usd" }, fmtUsd(cell ? cell.debt_usd : 0)));
}

function renderBands(summary) {
  const body = $("bands").tBodies[0];
  body.replaceChildren();
  for (const [name, bands] of Object.entries(summary.protocols)) {
    body.append(el("tr", { "data-protocol": name }, el("td", {}, name),
                   ...BANDS.map((b) => bandCell(bands[b], b))));
  }
  $("bands").tFoot.replaceChildren(
    el("tr", { "data-protocol": "" }, el("td", {}, "all"), ...BANDS.map((b) => bandCell(summary.totals[b], b))));
}

function renderHidden(hidden) {
  const body = $("hidden").tBodies[0];
  const row = (name, t) => el("tr", { "data-protocol": name },
    el("td", {}, name || "all"),
    el("td", { class: t.pending ? "" : "zero" }, fmtCount(t.pending)),
    el("td", { class: t.pending ? "" : "zero" }, fmtUsd(t.pending_seize_usd)),
    el("td", { class: t.insolvent ? "" : "zero" }, fmtCount(t.insolvent)),
    el("td", { class: t.shortfall_usd > 0 ? "" : "zero" }, fmtUsd(t.shortfall_usd)));
  if (!hidden) {
    body.replaceChildren(el("tr", {}, el("td", { colSpan: 5, class: "zero" },
                                         "off: the server runs with [book] realizable = false")));
    $("hidden").tFoot.replaceChildren();
    return;
  }
  body.replaceChildren(...Object.entries(hidden.protocols).map(([n, t]) => row(n, t)));
  $("hidden").tFoot.replaceChildren(row("", hidden.totals));
}

async function refreshSummary() {
  const sum = await getJson("v1/summary");
  $("positions-count").textContent = fmtCount(sum.positions);
  $("seq").textContent = fmtCount(Math.max(sum.seq, state.lastSeq));
  renderPrices(sum.prices);
  renderBands(sum);
  renderHidden(sum.hidden);
  document.body.dataset.summarySeq = sum.seq;
}

// --- the alert feed ------------------------------------------------------------------

const feed = { items: [], seen: new Set(), seenOrder: [], counts: {}, dirty: false, notes: [] };

function remember(seq) {
  if (feed.seen.has(seq)) return false;
  feed.seen.add(seq);
  feed.seenOrder.push(seq);
  if (feed.seenOrder.length > SEEN_MAX) feed.seen.delete(feed.seenOrder.shift());
  return true;
}

function addAlert(a) {
  feed.counts[a.to] = (feed.counts[a.to] || 0) + 1;
  a._fresh = true;
  // Newest first; a replay after a gap may bring older seqs, which go where they belong.
  const items = feed.items;
  if (items.length === 0 || a.seq > items[0].seq) items.unshift(a);
  else {
    let i = items.findIndex((x) => x.seq < a.seq);
    if (i < 0) i = items.length;
    items.splice(i, 0, a);
  }
  if (items.length > FEED_MAX) items.length = FEED_MAX;
  scheduleFeed();
}

function feedNote(text) {
  feed.notes.unshift({ text, at: Date.now() });
  feed.notes.length = Math.min(feed.notes.length, 3);
  scheduleFeed();
}

// The feed is redrawn at most every FEED_FRAME_MS: a 20% move crosses thousands of
// positions at once, and redrawing per alert would fall behind the socket.
const FEED_FRAME_MS = 200;
function scheduleFeed() {
  if (feed.dirty) return;
  feed.dirty = true;
  setTimeout(() => requestAnimationFrame(renderFeed), FEED_FRAME_MS);
}

function renderFeed() {
  feed.dirty = false;
  if (state.lastSeq) $("seq").textContent = fmtCount(state.lastSeq);
  // Only a trickle flashes; a burst would be one blue block.
  const flash = feed.items.filter((a) => a._fresh).length <= 20;
  const frag = document.createDocumentFragment();
  for (const n of feed.notes) frag.append(el("li", { class: "note" }, `${clock(n.at)}  ${n.text}`));
  for (const a of feed.items) {
    const li = el("li", {
      class: `to-${a.to}${a._fresh && flash ? " fresh" : ""}`,
      "data-seq": a.seq, "data-position": a.position, "data-protocol": a.protocol,
      "data-from": a.from, "data-to": a.to,
    },
    el("span", { class: "t", title: clock(a.emit_ns / 1e6) }, clock(a.emit_ns / 1e6).slice(0, 8)),
    el("span", { class: "pos", title: a.owner ? `${a.position}, owner ${a.owner}` : a.position }, a.position),
    el("span", { class: "proto", title: a.protocol }, a.protocol),
    el("span", {}, bandChip(a.from), el("span", { class: "arrow" }, "→"), bandChip(a.to)),
    el("span", {}, `${fmtHf(a.hf_before)}→${fmtHf(a.hf_after)}`),
    el("span", { class: "cause", title: a.cause ? `${a.cause} at ${a.price}` : "the position was updated" },
       a.cause ? `${a.cause} ${fmtPrice(a.price)}` : "update"));
    a._fresh = false;
    frag.append(li);
  }
  $("feed").replaceChildren(frag);
  $("feed-empty").hidden = feed.items.length > 0;
  $("alert-counts").replaceChildren(...BANDS.filter((b) => feed.counts[b]).map(
    (b) => el("span", { class: `c-${b}`, title: `alerts into ${b} since the page opened` },
              `${fmtCount(feed.counts[b])} → ${b}`)));
}

// --- the projection -------------------------------------------------------------------

function stat(k, v, detail, bad) {
  return el("div", { class: "stat" }, el("span", { class: "k" }, k),
            el("span", { class: `v${bad ? " bad" : ""}` }, v),
            detail ? el("span", { class: "detail", title: detail }, detail) : null);
}

function renderProjection(p) {
  const badDebt = Object.values(p.bad_debt_usd).reduce((x, y) => x + y, 0);
  const perProtocol = (obj, f) => Object.entries(obj).filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${f(v)}`).join(" · ");
  $("projection-stats").replaceChildren(
    stat("liquidatable now", fmtCount(p.liquidatable_now), null, p.liquidatable_now > 0),
    stat("rounds", fmtCount(p.rounds), `${p.duration_ms.toFixed(1)} ms to project`),
    stat("positions liquidated", fmtCount(p.positions_liquidated), perProtocol(p.liquidated, fmtCount)),
    stat("repaid", fmtUsd(p.repaid_usd)),
    stat("collateral seized", fmtUsd(p.seized_usd),
         Object.entries(p.sold).map(([k, v]) => `${k} ${fmtCount(Math.round(v))}`).join(" · ")),
    stat("bad debt", fmtUsd(badDebt), perProtocol(p.bad_debt_usd, fmtUsd), badDebt > 0));
  $("projection-note").textContent = `seq ${fmtCount(p.seq)}${p.emit_ns ? ` · ${clock(p.emit_ns / 1e6)}` : ""}`;
  document.body.dataset.projectionSeq = p.seq;

  const path = p.price_path || {};
  const series = Object.entries(path).map(([sym, prices]) => ({
    key: sym, label: sym, color: assetColor(sym),
    points: prices.map((v, i) => [i, v / prices[0] - 1]),
  }));
  const rounds = Math.max(1, p.rounds);
  drawChart($("path-chart"), {
    x: { min: 0, max: rounds, format: (v) => `${v}`, label: "round", minStep: 1 },
    y: { format: (v, step) => pctFor(v, step, 4, true), max: 0, pad: 0.05 },
    series,
    empty: p.liquidatable_now > 0 ? "The liquidations move no price" : "No cascade: nothing is liquidatable at current prices",
  });
}

async function refreshProjection() {
  renderProjection(await getJson("v1/cascade"));
}

// --- curves ----------------------------------------------------------------------------

function assetColor(sym) {
  const i = state.assets.findIndex((a) => a.symbol === sym);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function renderCurves(c, ms) {
  const crit = c.critical_shock;
  const critBox = $("critical");
  const none = crit.shock == null;
  critBox.replaceChildren(
    el("span", {}, el("span", { class: "k" }, "critical shock "),
       el("span", { class: `big${none ? " none" : ""}`, "data-critical": none ? "" : crit.shock },
          none ? "none up to 90%" : `−${fmtPct(crit.shock, 1)}`)),
    el("span", {}, el("span", { class: "k" }, "reason "), crit.reason),
    el("span", {}, el("span", { class: "k" }, "price "), `$${fmtPrice(c.price)}`),
    el("span", {}, el("span", { class: "k" }, "baseline drop "), fmtPct(crit.baseline_drop, 2)),
    el("span", {}, el("span", { class: "k" }, "amplification threshold "), `${crit.amplification}×`));
  $("curves-note").textContent = `on the live book · ${Math.round(ms)} ms`;

  const marks = none ? [] : [{ key: "critical", x: crit.shock, label: `critical −${fmtPct(crit.shock, 1)}`, color: "#e5484d" }];
  const usd = (v) => fmtUsd(v);
  const pct = (v, step) => pctFor(v, step, 1, false);
  drawChart($("curves-usd"), {
    x: { min: 0, max: Math.max(...c.liquidation_curve.map((p) => p.drop)), format: pct, label: "price drop" },
    y: { format: usd },
    series: [
      { key: "liquidation", label: "liquidatable collateral (static)", color: "#4f9cf7", area: true,
        points: c.liquidation_curve.map((p) => [p.drop, p.collateral_usd]) },
      { key: "cascade", label: "seized in the cascade", color: "#f0883e",
        points: c.cascade_curve.map((p) => [p.shock, p.seized_usd]) },
      { key: "bad_debt", label: "bad debt", color: "#e5484d", dash: "5 3",
        points: c.cascade_curve.map((p) => [p.shock, p.bad_debt_usd]) },
    ],
    marks,
  });
  const maxShock = Math.max(...c.cascade_curve.map((p) => p.shock));
  drawChart($("curves-drop"), {
    x: { min: 0, max: maxShock, format: pct, label: "initial shock" },
    y: { format: pct, min: 0 },
    series: [{ key: "final_drop", label: "final drop", color: "#f0883e",
               points: c.cascade_curve.map((p) => [p.shock, p.final_drop]) }],
    refs: [
      { label: "no amplification", color: "#4b5563", points: [[0, 0], [maxShock, maxShock]] },
      { label: `${crit.amplification}× shock`, color: "#7d3b3d", dash: "6 3",
        points: [[0, 0], [maxShock, crit.amplification * maxShock]] },
    ],
    marks,
  });
}

async function refreshCurves() {
  if (!state.asset) return;
  const asset = state.asset;
  const t0 = performance.now();
  state.bookMoved = false;
  state.curvesAt = Date.now();
  const c = await getJson(`v1/curves?asset=${encodeURIComponent(asset)}`);
  if (asset !== state.asset) return;  // the selection changed meanwhile
  renderCurves(c, performance.now() - t0);
}

async function loadAssets() {
  const a = await getJson("v1/assets");
  state.assets = a.assets;
  for (const x of a.assets) state.reference[x.symbol] = x.reference_price ?? x.price;
  const sel = $("asset");
  sel.replaceChildren(...a.assets.map((x) => el("option", { value: x.symbol }, x.symbol)));
  // The asset in the URL (#asset=WBTC), else the market's first (its main collateral
  // by the config's convention).
  const wanted = hashParams().get("asset");
  const pick = a.assets.find((x) => x.symbol === wanted) || a.assets[0];
  state.asset = pick ? pick.symbol : null;
  sel.value = state.asset;
  sel.addEventListener("change", () => {
    state.asset = sel.value;
    const h = hashParams();
    h.set("asset", sel.value);
    history.replaceState(null, "", `#${h}`);
    run(refreshCurves);
  });
}

// --- WebSocket ---------------------------------------------------------------------

let ws = null;
let retryMs = 1000;
let opened = false;
let summaryTimer = 0;

function subscribe() {
  const minBand = $("min-band").value;
  ws.send(JSON.stringify({ op: "subscribe", id: "page", channels: ["alerts", "cascades"],
                           filter: { min_band: minBand } }));
}

function connect() {
  const url = new URL("v1/ws", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  if (token) url.searchParams.set("token", token);
  setConn("connecting", "connecting");
  opened = false;
  ws = new WebSocket(url);
  ws.onopen = () => {
    opened = true;
    retryMs = 1000;
    setConn("live", "live");
    subscribe();
    // After a reconnect, fetch what was missed while away (repeats are dropped by seq).
    if (state.lastSeq > 0) ws.send(JSON.stringify({ op: "resume", id: "reconnect", from_seq: state.lastSeq + 1 }));
  };
  ws.onmessage = (ev) => handle(JSON.parse(ev.data));
  ws.onclose = () => {
    const wait = retryMs;
    retryMs = Math.min(retryMs * 2, 15000);
    setConn("down", opened ? `disconnected · retry in ${wait / 1000}s`
                           : `cannot connect (server down, or it wants a token: open with #token=TOKEN) · retry in ${wait / 1000}s`);
    setTimeout(connect, wait);
  };
}

function handle(m) {
  switch (m.type) {
    case "hello":
      $("seq").textContent = fmtCount(m.seq);
      break;
    case "alert":
    case "cascade":
      if (!remember(m.seq)) return;  // a repeat from a resume
      state.lastSeq = Math.max(state.lastSeq, m.seq);
      state.bookMoved = true;
      if (m.type === "cascade") {
        renderProjection(m);
      } else {
        addAlert(m);
        soonSummary();
      }
      break;
    case "gap":
      feedNote(`missed events ${m.from}–${m.to} (the page fell behind); fetching them again`);
      ws.send(JSON.stringify({ op: "resume", id: "gap", from_seq: m.from }));
      break;
    case "error":
      feedNote(`server: ${m.code}: ${m.message}`);
      break;
    default:
      break;
  }
}

// A summary soon after alerts, at most one in flight.
function soonSummary() {
  if (summaryTimer) return;
  summaryTimer = setTimeout(() => { summaryTimer = 0; run(refreshSummary); }, 300);
}

// Runs a refresh; a failure shows in the status line instead of being lost.
async function run(fn) {
  try {
    await fn();
  } catch (e) {
    if (e.status === 401 || e.status === 403) setConn("refused", `${e.message} (open the page with #token=TOKEN)`);
    else console.warn(e);
  }
}

async function main() {
  $("min-band").addEventListener("change", () => {
    if (ws && ws.readyState === WebSocket.OPEN) subscribe();
  });
  connect();
  await run(loadAssets);
  await Promise.all([run(refreshSummary), run(refreshProjection)]);
  run(refreshCurves);
  setInterval(() => run(refreshSummary), SUMMARY_MS);
  setInterval(() => run(refreshProjection), PROJECTION_MS);
  setInterval(() => {
    if (state.bookMoved && Date.now() - state.curvesAt >= CURVES_MIN_MS && !document.hidden) run(refreshCurves);
  }, 1000);
}

main();
