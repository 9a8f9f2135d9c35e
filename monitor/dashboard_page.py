"""The dashboard's one HTML page: mobile-first CSS and vanilla JS, no build step.

Kept apart from the routes so the page reads as one file. What the script keeps to:

- **Signed in by cookie.** The page holds no data and no token: it reads everything
  through ``/api/`` with the HttpOnly session cookie (``monitor.http``). Any 401 shows
  the sign-in form; signing in there (or through ``/dashboard?token=``) sets the cookie.
- **A stream that never dies silently.** ``/api/events`` is read with ``fetch`` (not
  ``EventSource``, which gives up for good on a 502 and cannot tell a 401 from a network
  error). Any failure reconnects, forever, after 0.5, 1, 2, 3, 3 ... seconds (with
  jitter; every 10 s once down for a minute); a stream silent for three heartbeats is
  dropped and reconnected. When the data is more than a few seconds old a full-width
  banner says how old. Each connection starts with a snapshot, so a reconnect resyncs.
- **Patched, not redrawn.** Mentions are kept by key; a ``patch`` updates the fields of
  the cards it names (each card keeps its ``data-post-id``), adds and removes cards, and
  moves them only when the order changes, never moving or deleting a card whose action
  (the 已公开回复 / 私信解决 choice, a request in flight) is in progress.
- **Idle means idle.** One timer a second rewrites only the countdowns of cards on
  screen (an ``IntersectionObserver`` keeps that set), and only when their text changes;
  the queue is re-sorted only when some mention crosses its warning or deadline. Nothing
  runs while the tab is hidden except the stream's watchdog.
- **Text is text.** Everything from data is set with ``textContent`` or
  ``setAttribute``, never ``innerHTML``; the server's Content-Security-Policy lets only
  this script (by nonce) run.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>舆情值班台 · crisismon</title>
<style nonce="__NONCE__">
:root { --bg:#f4f5f7; --card:#fff; --ink:#1d2129; --mute:#6b7280; --ok:#15803d;
  --warn:#b45309; --bad:#b91c1c; --line:#e5e7eb; --accent:#2563eb; }
* { box-sizing: border-box; }
[hidden] { display:none !important; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 system-ui, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; }
#top { position:sticky; top:0; z-index:4; }
header { background:#111827; color:#fff; padding:8px 12px; display:flex; flex-wrap:wrap;
  gap:6px 10px; align-items:center; }
header h1 { font-size:17px; margin:0; flex:1 1 auto; }
#live { font-size:13px; padding:2px 8px; border-radius:10px; background:#374151; }
#live.on { background:var(--ok); }
#live.off { background:var(--bad); }
#clock { font-size:13px; color:#d1d5db; font-variant-numeric:tabular-nums; }
#who { width:7em; font-size:14px; padding:3px 6px; border-radius:6px; border:0; }
#me { font-size:13px; }
header button { min-height:28px; padding:2px 10px; font-size:13px; background:#374151;
  color:#fff; border-color:#4b5563; }
#banner { background:var(--bad); color:#fff;
  padding:10px 12px; font-weight:600; display:flex; flex-wrap:wrap; gap:8px;
  align-items:center; justify-content:space-between; }
#banner button { background:#fff; color:var(--bad); border:0; font-weight:600; }
body.stale main { opacity:.55; }
main { display:grid; grid-template-columns:1fr; gap:12px; padding:12px;
  grid-template-areas: "inc" "men"; }
#incsec { grid-area:inc; min-width:0; } #mensec { grid-area:men; min-width:0; }
@media (min-width: 960px) {
  main { grid-template-columns: 3fr 2fr; grid-template-areas: "men inc"; align-items:start; }
  /* Denser cards on a desk: the buttons in a column on the right. */
  .card.mention { display:grid; grid-template-columns:1fr auto; column-gap:14px;
    grid-template-rows:auto auto auto auto 1fr; padding:8px 12px; margin-bottom:8px; }
  .card.mention > * { grid-column:1; }
  .card.mention > .actions { grid-column:2; grid-row:1 / span 5; margin-top:0;
    flex-direction:column; align-items:stretch; justify-content:center; width:13em; }
  .card.mention .resolver, .card.mention .ackslot { display:flex; flex-direction:column;
    gap:6px; }
  .card.mention .text { margin:4px 0; }
  .countdown { font-size:20px; }
}
h2 { font-size:16px; margin:4px 0 8px; }
.count { color:var(--mute); font-weight:normal; }
#tabs { display:flex; flex-wrap:wrap; gap:6px; margin-bottom:10px; }
#tabs button { white-space:nowrap; min-height:32px; padding:3px 10px; font-size:13px; }
#tabs button.sel { background:#111827; color:#fff; border-color:#111827; }
.card { background:var(--card); border-radius:10px; padding:10px 12px; margin-bottom:10px;
  border-left:5px solid var(--line); box-shadow:0 1px 2px rgba(0,0,0,.06); }
.card.s-ok { border-left-color:var(--ok); }
.card.s-warn { border-left-color:var(--warn); }
.card.s-bad { border-left-color:var(--bad); }
.card.gone { opacity:.6; }
.row { display:flex; flex-wrap:wrap; gap:6px 10px; align-items:baseline; }
.countdown { font-size:22px; font-weight:700; font-variant-numeric:tabular-nums; }
.s-ok .countdown { color:var(--ok); } .s-warn .countdown { color:var(--warn); }
.s-bad .countdown { color:var(--bad); }
.badge { font-size:12px; padding:1px 6px; border-radius:4px; background:#e5e7eb; }
.sev-P1 { background:#7f1d1d; color:#fff; } .sev-P2 { background:#dc2626; color:#fff; }
.sev-P3 { background:#f59e0b; } .sev-P4 { background:#d1d5db; }
.neg { color:var(--bad); } .pos { color:var(--ok); }
.text { margin:6px 0; white-space:pre-wrap; word-break:break-word; }
.why, .meta { font-size:13px; color:var(--mute); word-break:break-word; }
.actions { display:flex; flex-wrap:wrap; gap:8px; margin-top:8px; align-items:center; }
button { font:inherit; font-size:14px; padding:6px 12px; border-radius:6px;
  border:1px solid var(--line); background:#fff; cursor:pointer; min-height:36px; }
button.primary { background:var(--accent); color:#fff; border-color:var(--accent); }
button:disabled { opacity:.5; }
a { color:var(--accent); }
.acked { color:var(--ok); font-size:13px; }
.note { color:var(--warn); font-size:13px; }
.empty { color:var(--mute); padding:16px; text-align:center; }
#more { width:100%; margin-bottom:12px; }
svg.tl { width:100%; height:auto; display:block; }
.legend { font-size:12px; color:var(--mute); }
details.closed summary { cursor:pointer; color:var(--mute); margin-bottom:8px; }
#signin { max-width:420px; margin:48px auto; padding:20px; background:#fff;
  border-radius:12px; box-shadow:0 1px 3px rgba(0,0,0,.1); }
#signin input { width:100%; font:inherit; padding:8px; margin:8px 0 12px;
  border:1px solid #d1d5db; border-radius:6px; }
#signin-msg { color:var(--bad); min-height:1.5em; }
#msg { position:fixed; bottom:12px; left:12px; right:12px; z-index:5;
  background:#111827; color:#fff; padding:8px 12px; border-radius:8px; }
</style>
</head>
<body>
<div id="top">
<header>
  <h1>舆情值班台</h1>
  <span id="clock"></span>
  <input id="who" placeholder="值班人" aria-label="值班人" hidden>
  <span id="me" hidden></span>
  <span id="live">连接中</span>
  <button id="signout" type="button" hidden>退出</button>
</header>
<div id="banner" role="alert" hidden><span id="banner-text"></span>
  <button id="retry" type="button">立即重连</button></div>
</div>
<section id="signin" hidden>
  <h2>登录舆情值班台</h2>
  <form id="signin-form">
    <label for="token">访问令牌（启动时打印的链接中的 token，或你个人的令牌）</label>
    <input id="token" name="token" type="password" autocomplete="current-password" required>
    <div id="signin-msg" role="status"></div>
    <button class="primary" type="submit">登录</button>
  </form>
</section>
<main id="app">
  <section id="incsec">
    <h2>危机事件 <span class="count" id="icount"></span></h2>
    <div id="incidents"><div class="empty">加载中…</div></div>
    <details class="closed" id="closed" hidden><summary id="closed-sum"></summary>
      <div id="closed-list"></div></details>
  </section>
  <section id="mensec">
    <h2>待回复提及 <span class="count" id="mcount"></span></h2>
    <nav id="tabs" aria-label="按状态筛选"></nav>
    <div id="mentions"><div class="empty">加载中…</div></div>
    <button id="more" type="button" hidden></button>
  </section>
</main>
<div id="msg" role="status" hidden></div>
<script nonce="__NONCE__">
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const PAGE = 50, BACKOFF_CAP = 3000, STALE_AFTER = 3;
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function setText(e, text) { if (e.textContent !== text) e.textContent = text; }
  function say(text) {
    const m = $("msg");
    m.textContent = text; m.hidden = false;
    clearTimeout(say.t); say.t = setTimeout(() => { m.hidden = true; }, 4000);
  }

  // ------------------------------------------------------------------ the daemon's clock
  // A demo clock runs faster than the wall: now = base + elapsed * speed.
  let base = null, baseWall = 0, speed = 1, tz = "Asia/Shanghai", fmtCache = {};
  function simNow() {
    return base === null ? Date.now() / 1000
      : base + (performance.now() - baseWall) / 1000 * speed;
  }
  function syncClock(d) {
    if (typeof d.now !== "number") return;
    base = d.now; baseWall = performance.now(); speed = d.speed || 1;
    if (d.timezone && d.timezone !== tz) { tz = d.timezone; fmtCache = {}; }
  }
  // Times in the configured zone (the team's), not the phone's; formatters made once.
  function fmt(kind) {
    if (!fmtCache[kind]) {
      const o = { timeZone: tz, hour12: false, hour: "2-digit", minute: "2-digit" };
      if (kind !== "hm") o.second = "2-digit";
      if (kind === "full") { o.month = "2-digit"; o.day = "2-digit"; }
      fmtCache[kind] = new Intl.DateTimeFormat("zh-CN", o);
    }
    return fmtCache[kind];
  }
  const at = (t, kind) => fmt(kind || "hm").format(new Date(t * 1000));
  const num = new Intl.NumberFormat("zh-CN");
  const pad = (n) => String(n).padStart(2, "0");
  function mmss(s) {
    s = Math.floor(Math.abs(s));
    const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    return (h ? h + ":" + pad(m) : m) + ":" + pad(x);
  }

  // ------------------------------------------------------------------ who acts
  const who = $("who");
  who.value = localStorage.getItem("crisismon.who") || "";
  who.addEventListener("change", () => localStorage.setItem("crisismon.who", who.value));
  let user = null;  // a [[http.users]] name: acks are signed by the server as them
  function setUser(name) {
    user = name || null;
    who.hidden = !!user; $("me").hidden = !user;
    $("me").textContent = user ? "值班人：" + user : "";
    $("signout").hidden = false;
  }

  // ------------------------------------------------------------------ work queue
  const SEV = { P1: 0, P2: 1, P3: 2, P4: 3 };
  const mentions = new Map();   // key -> mention
  const cards = new Map();      // key -> card element (only those rendered)
  const busy = new Set();       // keys whose action is in progress: never moved or removed
  const onScreen = new Set();   // cards in (or near) the viewport: the only ones ticked
  let order = [], counts = {}, nextChange = Infinity, limit = PAGE, filter = "all";
  const observer = new IntersectionObserver((entries) => {
    const now = simNow();
    for (const e of entries) {
      if (e.isIntersecting) { onScreen.add(e.target); paint(e.target, now); }
      else onScreen.delete(e.target);
    }
  }, { rootMargin: "300px 0px" });

  // The work queue's order (the server's ``urgency``): P1 first; then what can still be
  // answered in time, least time left first; then breached ones, worst severity first
  // and the most recently breached first.
  function urgencyCmp(a, b, now) {
    const sa = SEV[a.severity] ?? 4, sb = SEV[b.severity] ?? 4;
    if ((sa !== 0) !== (sb !== 0)) return sa !== 0 ? 1 : -1;
    const la = a.deadline - now, lb = b.deadline - now;
    if ((la < 0) !== (lb < 0)) return la < 0 ? 1 : -1;
    if (la >= 0) return la - lb || sa - sb || (a.key < b.key ? -1 : 1);
    return sa - sb || lb - la || (a.key < b.key ? -1 : 1);
  }
  function stateOf(m, now) {
    return now >= m.deadline ? "breached" : now >= m.warn_at ? "warning" : "in_time";
  }
  const FILTERS = [["all", "全部"], ["breached", "已超时"], ["warning", "将超时"],
                   ["in_time", "时限内"], ["unacked", "未接手"], ["p1", "P1"]];
  function matches(m, now) {
    if (filter === "all") return true;
    if (filter === "unacked") return !m.acked_by;
    if (filter === "p1") return m.severity === "P1";
    return stateOf(m, now) === filter;
  }
  function resort() {
    const now = simNow();
    const all = Array.from(mentions.values());
    all.sort((a, b) => urgencyCmp(a, b, now));
    order = all;
    counts = { all: all.length, breached: 0, warning: 0, in_time: 0, unacked: 0, p1: 0 };
    nextChange = Infinity;
    for (const m of all) {
      counts[stateOf(m, now)]++;
      if (!m.acked_by) counts.unacked++;
      if (m.severity === "P1") counts.p1++;
      const next = now < m.warn_at ? m.warn_at : now < m.deadline ? m.deadline : Infinity;
      if (next < nextChange) nextChange = next;
    }
  }
  function buildTabs() {
    const tabs = $("tabs");
    for (const [id, label] of FILTERS) {
      const b = el("button", "", label);
      b.type = "button"; b.dataset.filter = id;
      b.addEventListener("click", () => { filter = id; limit = PAGE; render(); });
      tabs.append(b);
    }
  }
  function render() {
    const now = simNow();
    const shown = order.filter((m) => matches(m, now));
    const want = shown.slice(0, limit);
    const keep = new Set(want.map((m) => m.key));
    for (const k of busy) if (cards.has(k)) keep.add(k);
    for (const [k, c] of cards) {
      if (!keep.has(k)) { observer.unobserve(c); onScreen.delete(c); c.remove(); cards.delete(k); }
    }
    const box = $("mentions");
    for (const n of Array.from(box.children)) if (!n.dataset.key) n.remove();
    // Place the wanted cards in order. A busy card is never moved (moving a node drops
    // its focus and an open choice would jump): the others are placed around it.
    let cursor = box.firstChild;
    for (const m of want) {
      let c = cards.get(m.key);
      if (!c) { c = mentionCard(m); cards.set(m.key, c); observer.observe(c); }
      if (busy.has(m.key) && c.parentNode === box) {
        if (c === cursor) cursor = c.nextSibling;
        continue;
      }
      if (c === cursor) cursor = cursor.nextSibling;
      else box.insertBefore(c, cursor);
    }
    if (!want.length && !box.firstChild) {
      box.append(el("div", "empty", stale() ? "连接中断，列表可能不完整"
        : filter === "all" ? "没有待回复的提及" : "此状态下没有提及"));
    }
    for (const b of $("tabs").children) {
      const id = b.dataset.filter;
      setText(b, FILTERS.find((f) => f[0] === id)[1] + " " + (counts[id] || 0));
      b.classList.toggle("sel", id === filter);
    }
    setText($("mcount"), "(" + mentions.size + ")");
    const left = shown.length - want.length;
    $("more").hidden = left <= 0;
    setText($("more"), "再显示 " + Math.min(PAGE, left) + " 条（还有 " + left + " 条）");
  }
  $("more").addEventListener("click", () => { limit += PAGE; render(); });

  function paint(card, now) {
    const m = card._m;
    if (!m) return;
    const left = m.deadline - now;
    setText(card._cd, left >= 0 ? "剩 " + mmss(left) : "超时 " + mmss(left));
    const s = left < 0 ? "s-bad" : now >= m.warn_at ? "s-warn" : "s-ok";
    if (card._state !== s) {
      if (card._state) card.classList.remove(card._state);
      card.classList.add(s); card._state = s;
    }
  }

  function mentionCard(m) {
    const c = el("article", "card mention");
    c.dataset.postId = m.post_id; c.dataset.key = m.key;
    const top = el("div", "row");
    c._cd = el("span", "countdown", "");
    c._sev = el("span", "badge"); c._senti = el("span"); c._brand = el("span", "badge");
    top.append(c._cd, c._sev, c._senti, c._brand);
    const meta = el("div", "meta");
    c._author = el("span", "author"); c._facts = el("span"); c._time = el("span");
    const a = el("a", "", "查看原帖");
    a.setAttribute("href", "https://m.weibo.cn/detail/" + encodeURIComponent(m.post_id));
    a.setAttribute("target", "_blank"); a.setAttribute("rel", "noopener noreferrer");
    meta.append(c._author, c._facts, " · ", c._time, " · ", a);
    c._text = el("div", "text"); c._why = el("div", "why");
    const acts = el("div", "actions");
    c._ack = el("span", "ackslot"); c._note = el("span", "note");
    acts.append(c._ack, c._note, resolver(c, m));
    c.append(top, meta, c._text, c._why, acts);
    update(c, m);
    return c;
  }
  // Patch a card's fields from ``m``; the resolve choice (if open) is left alone.
  function update(c, m) {
    const old = c._m || {};
    c._m = m;
    if (old.severity !== m.severity) {
      c._sev.className = "badge sev-" + m.severity; c._sev.textContent = m.severity;
    }
    if (old.sentiment !== m.sentiment || old.negative !== m.negative) {
      c._senti.className = m.negative ? "neg" : "pos";
      c._senti.textContent = "情感 " + m.sentiment.toFixed(2) + (m.negative ? " 负面" : " 非负面");
    }
    setText(c._brand, m.brand);
    setText(c._author, "@" + m.author);
    setText(c._facts, " · 粉丝 " + num.format(m.followers)
      + (m.reposts ? " · 转发 " + num.format(m.reposts) : ""));
    setText(c._time, at(m.created_at, "hms"));
    setText(c._text, m.text);
    setText(c._why, m.reasons && m.reasons.length ? "原因：" + m.reasons.join("；") : "");
    c._why.hidden = !(m.reasons && m.reasons.length);
    setText(c._note, m.private_resolve_at ? "已私下解决，待公开跟进" : "");
    if (old.acked_by !== m.acked_by || !c._ack.firstChild) {
      if (!c._acking) {
        c._ack.replaceChildren(m.acked_by ? el("span", "acked", "已确认 · " + m.acked_by)
                                          : ackButton(c));
      }
    }
    paint(c, simNow());
  }
  function ackButton(c) {
    const b = el("button", "primary ack", "确认接手");
    b.type = "button";
    b.addEventListener("click", async () => {
      c._acking = true;
      const ok = await act(c, b, "/ack", {});
      c._acking = false;
      if (ok) b.textContent = "已提交…";
      else if (c._m.acked_by) update(c, c._m);
    });
    return b;
  }
  function resolver(c, m) {
    const box = el("span", "resolver");
    const res = el("button", "resolve", "标记已解决…");
    res.type = "button";
    res.addEventListener("click", () => {
      res.hidden = true;
      busy.add(c.dataset.key);
      const pub = el("button", "primary resolve-public", "已公开回复");
      const priv = el("button", "resolve-private", "私信解决（仍需公开跟进）");
      const no = el("button", "resolve-cancel", "取消");
      const close = () => { pub.remove(); priv.remove(); no.remove(); res.hidden = false;
                            done(c); };
      pub.addEventListener("click", async () => {
        if (await act(c, pub, "/resolve", { public: true })) close();
      });
      priv.addEventListener("click", async () => {
        if (await act(c, priv, "/resolve", { public: false })) close();
      });
      no.addEventListener("click", close);
      box.append(pub, priv, no);
    });
    box.append(res);
    return box;
  }
  // An action ended: the card may move again, or go if it left the queue meanwhile.
  function done(c) {
    busy.delete(c.dataset.key);
    if (!mentions.has(c.dataset.key)) { c.classList.remove("gone"); }
    render();
  }
  async function act(c, button, verb, body) {
    const key = c.dataset.key, wasBusy = busy.has(key);
    busy.add(key);
    button.disabled = true;
    try {
      if (!user) body.by = who.value.trim() || "值班台";
      await post("/api/mentions/" + encodeURIComponent(c.dataset.postId) + verb, body);
      say("已提交");
      return true;
    } catch (e) {
      say(String(e.message || e));
      return false;
    } finally {
      button.disabled = false;
      if (!wasBusy) done(c);
    }
  }
  async function post(path, body) {
    const r = await fetch(path, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (r.status === 401) { signIn("登录已失效，请重新登录"); throw new Error("请重新登录"); }
    if (!r.ok) {
      let why = "";
      try { why = (await r.json()).error; } catch (e) { why = ""; }
      throw new Error(why || "请求失败 " + r.status);
    }
    return r.json();
  }

  function upsert(m) {
    mentions.set(m.key, m);
    const c = cards.get(m.key);
    if (c) { c.classList.remove("gone"); update(c, m); }
  }
  function drop(key) {
    mentions.delete(key);
    const c = cards.get(key);
    if (c && busy.has(key)) {  // someone is acting on it: say so, take it away after
      c.classList.add("gone");
      setText(c._note, "已被回复或处理，已从队列移出");
    }
  }

  // ------------------------------------------------------------------ incidents
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function timeline(inc) {
    const W = 600, H = 120, L = 4, R = 596, t = inc.t;
    const t0 = inc.series_start, t1 = t.window_end;
    const x = (v) => L + (R - L) * Math.max(0, Math.min(1, (v - t0) / (t1 - t0)));
    const s = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "tl", role: "img",
                           "aria-label": "事件时间线" });
    const series = inc.negatives_per_hour, top = Math.max(1, ...series);
    series.forEach((n, h) => {
      const a = x(t0 + h * 3600), b = x(t0 + (h + 1) * 3600), hh = 50 * n / top;
      if (n) s.append(svg("rect", { x: a + 1, y: 80 - hh, width: Math.max(1, b - a - 2),
                                    height: hh, fill: "#fca5a5" }));
    });
    s.append(svg("line", { x1: L, x2: R, y1: 80, y2: 80, stroke: "#9ca3af" }));
    const ws = x(t.opened + inc.window_start);
    s.append(svg("rect", { x: ws, y: 78, width: R - ws, height: 4, fill: "#fde68a" }));
    // Labels of marks close in time would overprint each other: each goes in the first
    // row below the axis where it fits after the labels already placed there.
    const rowEnd = [];
    const mark = (v, color, label) => {
      if (v === null || v === undefined) return;
      s.append(svg("line", { x1: x(v), x2: x(v), y1: 24, y2: 86, stroke: color,
                             "stroke-width": 2 }));
      if (!label) return;
      const width = 15 * label.length + 8, left = Math.min(x(v) + 2, W - width);
      let row = rowEnd.findIndex((end) => end <= left);
      if (row < 0) { row = rowEnd.length; rowEnd.push(0); }
      rowEnd[row] = left + width;
      s.append(svg("text", { x: left, y: 102 + 17 * row, "font-size": 15, fill: color },
                   label));
    };
    t.checkpoints.forEach((c) => mark(c, "#9ca3af", ""));
    mark(t.opened, "#b91c1c", "开启 " + at(t.opened));
    mark(t.statement_due, "#b45309", "声明截止");
    mark(t.statement_at, "#15803d", t.statement_at ? "声明发布 " + at(t.statement_at) : "");
    mark(t.closed_at, "#374151", "关闭");
    s.setAttribute("viewBox", "0 0 " + W + " " + Math.max(H, 108 + 17 * rowEnd.length));
    const now = simNow();
    if (now > t0 && now < t1) s.append(svg("line", { x1: x(now), x2: x(now), y1: 20, y2: 86,
      stroke: "#2563eb", "stroke-dasharray": "3 2" }));
    s.append(svg("text", { x: L, y: 15, "font-size": 15, fill: "#6b7280" },
                 "每小时负面提及（最高 " + top + "）"));
    return s;
  }
  function incidentCard(inc) {
    const c = el("article", "card incident " + (inc.open ? "s-bad" : "s-ok"));
    c.dataset.incidentId = inc.id;
    const top = el("div", "row");
    top.append(el("span", "badge sev-" + inc.severity, inc.severity),
      el("strong", "", inc.brand), el("span", "badge", inc.open ? "进行中" : "已关闭"),
      el("span", "meta", "开启 " + inc.opened_at.replace("T", " ").slice(0, 16)));
    c.append(top, el("div", "text", inc.detail));
    let st;
    if (inc.statement_at) st = "官方声明已发布 " + at(inc.t.statement_at);
    else st = (simNow() > inc.t.statement_due ? "声明已逾期！截止 " : "声明截止 ")
      + at(inc.t.statement_due);
    c.append(el("div", "meta", st + " · 提及 " + inc.mentions + " · 负面 " + inc.negatives
      + (inc.acked_by ? " · 已确认 " + inc.acked_by : "")));
    c.append(timeline(inc));
    c.append(el("div", "legend", "红线 开启 · 橙线 声明截止 · 绿线 声明 · 灰线 检查点"
      + " · 蓝虚线 现在 · 黄带 12–24h 窗口"));
    return c;
  }
  let incidents = [];
  const incCards = new Map();  // id -> [json, card]: a card is redrawn only when it changed
  function renderIncidents(force) {
    const openBox = $("incidents"), closedBox = $("closed-list");
    const seen = new Set();
    let nOpen = 0, nClosed = 0;
    for (const inc of incidents) {
      seen.add(inc.id);
      const json = JSON.stringify(inc);
      let entry = incCards.get(inc.id);
      if (!entry || entry[0] !== json || force) {
        const c = incidentCard(inc);
        if (entry) entry[1].replaceWith(c);
        entry = [json, c]; incCards.set(inc.id, entry);
      }
      const box = inc.open ? openBox : closedBox;
      box.append(entry[1]);  // appending in order keeps open ones first, newest first
      if (inc.open) nOpen++; else nClosed++;
    }
    for (const [id, entry] of incCards) {
      if (!seen.has(id)) { entry[1].remove(); incCards.delete(id); }
    }
    for (const n of Array.from(openBox.children)) if (!n.dataset.incidentId) n.remove();
    if (!nOpen) openBox.append(el("div", "empty", stale()
      ? "连接中断，无法确认是否有危机事件" : "没有进行中的危机事件"));
    // Stale data must not read as "no crisis": the count says it is the last known one.
    setText($("icount"), "(" + (stale() ? "最后已知 " : "") + nOpen + " 进行中)");
    $("closed").hidden = !nClosed;
    setText($("closed-sum"), "已关闭的事件 " + nClosed);
  }

  // ------------------------------------------------------------------ live stream
  let ctrl = null, attempt = 0, connected = false, retryTimer = null, retryAt = 0;
  let lastContact = performance.now(), lastByte = 0, version = -1, heartbeat = 5;
  let signedOut = false, downSince = 0;
  function setLive(text, cls) { setText($("live"), text); $("live").className = cls; }
  function stale() {
    const age = (performance.now() - lastContact) / 1000;
    return (!connected && age > STALE_AFTER) || age > 3 * heartbeat;
  }
  function banner() {
    const b = $("banner");
    if (signedOut || !stale()) {
      if (!b.hidden) { b.hidden = true; document.body.classList.remove("stale");
                       renderIncidents(); render(); }
      return;
    }
    const age = Math.floor((performance.now() - lastContact) / 1000);
    const wait = Math.max(0, Math.ceil((retryAt - performance.now()) / 1000));
    setText($("banner-text"), "⚠ 数据已 " + mmss(age) + " 未更新（与服务器的连接中断）"
      + (retryTimer ? " · 第 " + attempt + " 次重连，" + wait + " 秒后" : " · 正在重连…"));
    if (b.hidden) { b.hidden = false; document.body.classList.add("stale");
                    renderIncidents(); render(); }
  }
  $("retry").addEventListener("click", () => { attempt = 0; connect(); });

  async function connect() {
    clearTimeout(retryTimer); retryTimer = null;
    if (ctrl) ctrl.abort();
    const c = new AbortController();
    ctrl = c; connected = false;
    setLive("连接中", "");
    let resp;
    try {
      resp = await fetch("/api/events", { signal: c.signal, cache: "no-store",
        credentials: "same-origin", headers: { "Accept": "text/event-stream" } });
    } catch (e) { return fail(c); }
    if (resp.status === 401) { c.abort(); if (c === ctrl) signIn(""); return; }
    if (!resp.ok || !resp.body) { return fail(c); }
    try {
      const reader = resp.body.getReader(), dec = new TextDecoder();
      let buf = "";
      lastByte = performance.now();
      for (;;) {
        const { value, done } = await reader.read();
        if (done || c !== ctrl) break;
        lastByte = performance.now();
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\\n\\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!onEvent(block, c)) return;
        }
      }
    } catch (e) { /* a network error or our own abort: reconnect below */ }
    fail(c);
  }
  // Retry after 0.5, 1, 2, 3, 3 ... s (+-20 %), forever, whatever went wrong; after a
  // minute down, every 10 s (a long outage need not drain a phone's battery).
  function fail(c, now) {
    if (c !== ctrl) return;
    ctrl = null;
    if (connected || !downSince) downSince = performance.now();
    connected = false;
    c.abort();
    const cap = performance.now() - downSince < 60000 ? BACKOFF_CAP : 10000;
    const delay = now ? 0 : Math.min(cap, 500 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
    attempt++;
    retryAt = performance.now() + delay;
    setLive("重连中", "off");
    retryTimer = setTimeout(connect, delay);
    banner();
  }
  function onEvent(block, c) {
    let event = "message", data = "";
    for (const line of block.split("\\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trimStart();
    }
    lastContact = performance.now();
    if (!data) return true;
    const d = JSON.parse(data);
    if (event === "hello") {
      syncClock(d); setUser(d.user); heartbeat = d.heartbeat || heartbeat;
    } else if (event === "snapshot") {
      syncClock(d);
      version = d.v;
      const fresh = new Set(d.mentions.map((m) => m.key));
      for (const k of Array.from(mentions.keys())) if (!fresh.has(k)) drop(k);
      for (const m of d.mentions) upsert(m);
      incidents = d.incidents;
      connected = true; attempt = 0; downSince = 0;
      setLive("实时", "on");
      resort(); render(); renderIncidents(); banner();
      document.body.dataset.loaded = "1";
      document.body.dataset.connects = String(Number(document.body.dataset.connects || 0) + 1);
    } else if (event === "patch") {
      syncClock(d);
      if (d.v !== version + 1) { fail(c, true); return false; }  // missed one: resync
      version = d.v;
      for (const k of d.remove) drop(k);
      for (const m of d.upsert) upsert(m);
      if (d.incidents) { incidents = d.incidents; renderIncidents(); }
      resort(); render();
    } else if (event === "tick") {
      syncClock(d);
    }
    return true;
  }

  // ------------------------------------------------------------------ sign-in
  function signIn(why) {
    signedOut = true; connected = false;
    if (ctrl) { const c = ctrl; ctrl = null; c.abort(); }
    clearTimeout(retryTimer); retryTimer = null;
    for (const k of Array.from(mentions.keys())) { busy.delete(k); drop(k); }
    incidents = []; resort(); render(); renderIncidents();
    $("app").hidden = true; $("banner").hidden = true; $("signout").hidden = true;
    $("signin").hidden = false;
    setLive("未登录", "off"); setText($("clock"), "");
    setText($("signin-msg"), why || "");
    document.body.dataset.signin = "1";
    $("token").focus();
  }
  function start() {
    signedOut = false;
    delete document.body.dataset.signin;
    $("signin").hidden = true; $("app").hidden = false;
    lastContact = performance.now();
    attempt = 0; connect();
  }
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    const r = await fetch("/dashboard/signin", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }) })
      .catch(() => null);
    if (r && r.ok) { $("token").value = ""; start(); }
    else setText($("signin-msg"), r ? "令牌不对" : "连不上服务器，请稍后再试");
  });
  $("signout").addEventListener("click", async () => {
    await fetch("/dashboard/signout", { method: "POST", credentials: "same-origin" })
      .catch(() => null);
    signIn("已退出");
  });

  // ------------------------------------------------------------------ one timer
  // Once a second: the clock, the countdowns on screen, the banner, the watchdog; the
  // queue is re-sorted only when a mention crosses its warning or its deadline.
  let ticks = 0;
  function tick() {
    ticks++;
    if (!document.hidden && !signedOut) {
      const now = simNow();
      if (base !== null) {  // the daemon's clock, once it has told us
        setText($("clock"), "时钟 " + at(now, "full") + (speed !== 1 ? " ×" + speed : ""));
      }
      for (const c of onScreen) paint(c, now);
      if (now >= nextChange) { resort(); render(); }
      if (ticks % 60 === 0) renderIncidents(true);  // the "now" line and overdue marks
      banner();
    }
    if (connected && ctrl && performance.now() - lastByte > 3 * heartbeat * 1000) {
      fail(ctrl, true);  // a silent stream (a proxy holding it half-open): start over
    }
    setTimeout(tick, 1000 - Date.now() % 1000);
  }
  // Back online, or back to the tab after the phone slept: do not wait for the backoff.
  window.addEventListener("online", () => { if (!connected && !signedOut) connect(); });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !connected && !signedOut) { attempt = 0; connect(); }
  });

  buildTabs();
  if (new URLSearchParams(location.search).get("signin") === "failed") {
    history.replaceState(null, "", location.pathname);
    signIn("令牌不对");
  } else {
    start();
  }
  tick();
})();
</script>
</body>
</html>
"""


def render_page(nonce: str) -> str:
    """The page with this response's CSP nonce on its style and script."""
    return PAGE.replace("__NONCE__", nonce)
