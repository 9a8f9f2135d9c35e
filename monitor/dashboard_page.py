"""The dashboard's one HTML page: mobile-first CSS and vanilla JS, no build step.

Kept apart from the routes so the page reads as one file. Safety rules the script
keeps: every text that comes from a post (or any data) is set with ``textContent`` or
``setAttribute``, never ``innerHTML``; the token is read from ``?token=`` once, kept in
``sessionStorage`` and removed from the address bar; the server's Content-Security-Policy
allows only this script (by nonce), so an injected ``<script>`` could not run anyway.
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
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 system-ui, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; }
header { position:sticky; top:0; z-index:2; background:#111827; color:#fff;
  padding:8px 12px; display:flex; flex-wrap:wrap; gap:8px; align-items:center; }
header h1 { font-size:17px; margin:0; flex:1 1 auto; }
#live { font-size:13px; padding:2px 8px; border-radius:10px; background:#374151; }
#live.on { background:var(--ok); }
#live.off { background:var(--bad); }
#clock { font-size:13px; color:#d1d5db; }
#who { width:7em; font-size:14px; padding:3px 6px; border-radius:6px; border:0; }
main { display:grid; grid-template-columns:1fr; gap:12px; padding:12px; }
@media (min-width: 960px) { main { grid-template-columns: 3fr 2fr; } }
h2 { font-size:16px; margin:4px 0 8px; }
.count { color:var(--mute); font-weight:normal; }
.card { background:var(--card); border-radius:10px; padding:10px 12px; margin-bottom:10px;
  border-left:5px solid var(--line); box-shadow:0 1px 2px rgba(0,0,0,.06); }
.card.s-ok { border-left-color:var(--ok); }
.card.s-warn { border-left-color:var(--warn); }
.card.s-bad { border-left-color:var(--bad); }
.row { display:flex; flex-wrap:wrap; gap:6px 10px; align-items:baseline; }
.countdown { font-size:22px; font-weight:700; font-variant-numeric:tabular-nums; }
.s-ok .countdown { color:var(--ok); } .s-warn .countdown { color:var(--warn); }
.s-bad .countdown { color:var(--bad); }
.badge { font-size:12px; padding:1px 6px; border-radius:4px; background:#e5e7eb; }
.sev-P1 { background:#7f1d1d; color:#fff; } .sev-P2 { background:#dc2626; color:#fff; }
.sev-P3 { background:#f59e0b; } .sev-P4 { background:#d1d5db; }
.neg { color:var(--bad); } .pos { color:var(--ok); }
.text { margin:6px 0; white-space:pre-wrap; word-break:break-word; }
.why, .meta { font-size:13px; color:var(--mute); }
.actions { display:flex; flex-wrap:wrap; gap:8px; margin-top:8px; }
button { font:inherit; font-size:14px; padding:6px 12px; border-radius:6px;
  border:1px solid var(--line); background:#fff; cursor:pointer; min-height:36px; }
button.primary { background:var(--accent); color:#fff; border-color:var(--accent); }
button:disabled { opacity:.5; }
a { color:var(--accent); }
.acked { color:var(--ok); font-size:13px; }
.empty { color:var(--mute); padding:16px; text-align:center; }
svg.tl { width:100%; height:120px; display:block; }
.legend { font-size:12px; color:var(--mute); }
#msg { position:fixed; bottom:12px; left:12px; right:12px; z-index:3; display:none;
  background:#111827; color:#fff; padding:8px 12px; border-radius:8px; }
</style>
</head>
<body>
<header>
  <h1>舆情值班台</h1>
  <span id="clock"></span>
  <input id="who" placeholder="值班人" aria-label="值班人">
  <span id="live">连接中</span>
</header>
<main>
  <section>
    <h2>待回复提及 <span class="count" id="mcount"></span></h2>
    <div id="mentions"><div class="empty">加载中…</div></div>
  </section>
  <section>
    <h2>危机事件 <span class="count" id="icount"></span></h2>
    <div id="incidents"><div class="empty">加载中…</div></div>
  </section>
</main>
<div id="msg" role="status"></div>
<script nonce="__NONCE__">
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  if (params.get("token")) {
    sessionStorage.setItem("crisismon.token", params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }
  const token = sessionStorage.getItem("crisismon.token") || "";
  const who = document.getElementById("who");
  who.value = localStorage.getItem("crisismon.who") || "";
  who.addEventListener("change", () => localStorage.setItem("crisismon.who", who.value));

  // The daemon's clock (a demo clock runs faster than the wall): now = base + elapsed*speed.
  let base = null, baseWall = 0, speed = 1, tz = "Asia/Shanghai";
  function simNow() {
    return base === null ? Date.now() / 1000
      : base + (performance.now() - baseWall) / 1000 * speed;
  }
  function syncClock(data) {
    base = data.now; baseWall = performance.now(); speed = data.speed || 1;
    tz = data.timezone || tz;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function say(text) {
    const m = document.getElementById("msg");
    m.textContent = text; m.style.display = "block";
    clearTimeout(say.t); say.t = setTimeout(() => { m.style.display = "none"; }, 4000);
  }
  async function api(path, opts) {
    const o = Object.assign({ headers: {} }, opts || {});
    o.headers = Object.assign({ "Authorization": "Bearer " + token }, o.headers);
    const r = await fetch(path, o);
    if (r.status === 401) { throw new Error("令牌无效或缺失（在地址后加 ?token=…）"); }
    if (!r.ok) { throw new Error("请求失败 " + r.status); }
    return r.json();
  }
  const pad = (n) => String(n).padStart(2, "0");
  function mmss(s) {
    s = Math.floor(Math.abs(s));
    const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), x = s % 60;
    return (h ? h + ":" + pad(m) : m) + ":" + pad(x);
  }
  // Times in the configured zone (the team's), not the phone's.
  function local(t, opts) {
    return new Date(t * 1000).toLocaleString("zh-CN",
      Object.assign({ timeZone: tz, hour12: false }, opts));
  }
  const hhmm = (t) => local(t, { hour: "2-digit", minute: "2-digit" });
  const fmt = new Intl.NumberFormat("zh-CN");

  // ------------------------------------------------------------------ mentions
  let mentions = [];
  function tickCountdowns() {
    const now = simNow();
    document.getElementById("clock").textContent = "时钟 " + local(now)
      + (speed !== 1 ? " ×" + speed : "");
    for (const card of document.querySelectorAll("#mentions .card")) {
      const m = mentions[Number(card.dataset.i)];
      if (!m) continue;
      const left = m.deadline - now;
      const cd = card.querySelector(".countdown");
      cd.textContent = left >= 0 ? "剩 " + mmss(left) : "超时 " + mmss(left);
      card.classList.remove("s-ok", "s-warn", "s-bad");
      card.classList.add(left < 0 ? "s-bad" : now >= m.warn_at ? "s-warn" : "s-ok");
    }
  }
  function mentionCard(m, i) {
    const c = el("article", "card mention");
    c.dataset.i = String(i);
    c.dataset.postId = m.post_id;
    const top = el("div", "row");
    top.append(el("span", "countdown", ""), el("span", "badge sev-" + m.severity, m.severity),
      el("span", m.negative ? "neg" : "pos",
         "情感 " + m.sentiment.toFixed(2) + (m.negative ? " 负面" : " 非负面")),
      el("span", "badge", m.brand));
    c.append(top);
    const meta = el("div", "meta");
    meta.append(el("span", "author", "@" + m.author), " · 粉丝 " + fmt.format(m.followers),
      m.reposts ? " · 转发 " + fmt.format(m.reposts) : "", " · ",
      el("span", "", local(m.created_at, { hour: "2-digit", minute: "2-digit",
                                            second: "2-digit" })), " · ");
    const a = el("a", "", "查看原帖");
    a.setAttribute("href", "https://m.weibo.cn/detail/" + encodeURIComponent(m.post_id));
    a.setAttribute("target", "_blank"); a.setAttribute("rel", "noopener noreferrer");
    meta.append(a);
    c.append(meta, el("div", "text", m.text));
    if (m.reasons && m.reasons.length) c.append(el("div", "why", "原因：" + m.reasons.join("；")));
    const acts = el("div", "actions");
    if (m.acked_by) {
      acts.append(el("span", "acked", "已确认 · " + m.acked_by));
    } else {
      const ack = el("button", "primary ack", "确认接手");
      // Ack the mention's latest page (stops its repeats); the mention itself if none.
      const path = m.alert_id ? "/api/alerts/" + encodeURIComponent(m.alert_id) + "/ack"
        : "/api/mentions/" + encodeURIComponent(m.post_id) + "/ack";
      ack.addEventListener("click", () => act(ack, path, {}));
      acts.append(ack);
    }
    if (m.private_resolve_at) acts.append(el("span", "acked", "已私下解决，待公开跟进"));
    const res = el("button", "resolve", "标记已解决…");
    res.addEventListener("click", () => {
      res.hidden = true;
      const path = "/api/mentions/" + encodeURIComponent(m.post_id) + "/resolve";
      const pub = el("button", "primary resolve-public", "已公开回复");
      const priv = el("button", "resolve-private", "私信解决（仍需公开跟进）");
      const no = el("button", "", "取消");
      pub.addEventListener("click", () => act(pub, path, { public: true }));
      priv.addEventListener("click", () => act(priv, path, { public: false }));
      no.addEventListener("click", () => { pub.remove(); priv.remove(); no.remove();
        res.hidden = false; });
      acts.append(pub, priv, no);
    });
    acts.append(res);
    c.append(acts);
    return c;
  }
  async function act(button, path, body) {
    button.disabled = true;
    try {
      body.by = who.value.trim() || "值班台";
      await api(path, { method: "POST", body: JSON.stringify(body),
                        headers: { "Content-Type": "application/json" } });
      say("已提交");
      await refresh();
    } catch (e) {
      button.disabled = false;
      say(String(e.message || e));
    }
  }
  function renderMentions(data) {
    mentions = data.mentions;
    const box = document.getElementById("mentions");
    box.replaceChildren();
    document.getElementById("mcount").textContent = "(" + mentions.length + ")";
    if (!mentions.length) box.append(el("div", "empty", "没有待回复的提及"));
    mentions.forEach((m, i) => box.append(mentionCard(m, i)));
    tickCountdowns();
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
    const counts = inc.negatives_per_hour, top = Math.max(1, ...counts);
    counts.forEach((n, h) => {
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
      s.append(svg("line", { x1: x(v), x2: x(v), y1: 22, y2: 86, stroke: color,
                             "stroke-width": 2 }));
      if (!label) return;
      const width = 11 * label.length + 6, at = Math.min(x(v) + 2, W - width);
      let row = rowEnd.findIndex((end) => end <= at);
      if (row < 0) { row = rowEnd.length; rowEnd.push(0); }
      rowEnd[row] = at + width;
      s.append(svg("text", { x: at, y: 98 + 12 * row, "font-size": 11, fill: color },
                   label));
    };
    t.checkpoints.forEach((c) => mark(c, "#9ca3af", ""));
    mark(t.opened, "#b91c1c", "开启 " + hhmm(t.opened));
    mark(t.statement_due, "#b45309", "声明截止");
    mark(t.statement_at, "#15803d", t.statement_at ? "声明发布 " + hhmm(t.statement_at) : "");
    mark(t.closed_at, "#374151", "关闭");
    s.setAttribute("viewBox", "0 0 " + W + " " + Math.max(H, 104 + 12 * rowEnd.length));
    const now = simNow();
    if (now > t0 && now < t1) s.append(svg("line", { x1: x(now), x2: x(now), y1: 14, y2: 86,
      stroke: "#2563eb", "stroke-dasharray": "3 2" }));
    s.append(svg("text", { x: L, y: 12, "font-size": 11, fill: "#6b7280" },
                 "每小时负面提及（最高 " + top + "）"));
    return s;
  }
  function renderIncidents(data) {
    const box = document.getElementById("incidents");
    box.replaceChildren();
    const open = data.incidents.filter((i) => i.open).length;
    document.getElementById("icount").textContent = "(" + open + " 进行中)";
    if (!data.incidents.length) box.append(el("div", "empty", "没有危机事件"));
    for (const inc of data.incidents) {
      const c = el("article", "card incident " + (inc.open ? "s-bad" : "s-ok"));
      c.dataset.incidentId = inc.id;
      const top = el("div", "row");
      top.append(el("span", "badge sev-" + inc.severity, inc.severity),
        el("strong", "", inc.brand), el("span", "badge", inc.open ? "进行中" : "已关闭"),
        el("span", "meta", "开启 " + inc.opened_at.replace("T", " ").slice(0, 16)));
      c.append(top, el("div", "text", inc.detail));
      let st = "";
      if (inc.statement_at) st = "官方声明已发布 " + hhmm(inc.t.statement_at);
      else st = (simNow() > inc.t.statement_due ? "声明已逾期！截止 " : "声明截止 ")
        + hhmm(inc.t.statement_due);
      c.append(el("div", "meta", st + " · 提及 " + inc.mentions + " · 负面 " + inc.negatives
        + (inc.acked_by ? " · 已确认 " + inc.acked_by : "")));
      c.append(timeline(inc));
      c.append(el("div", "legend", "红线 开启 · 橙线 声明截止 · 绿线 声明 · 灰线 检查点"
        + " · 蓝虚线 现在 · 黄带 12–24h 窗口"));
      box.append(c);
    }
  }

  // ------------------------------------------------------------------ live
  let busy = false, again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const [m, i] = await Promise.all([api("/api/mentions?open=1"), api("/api/incidents")]);
      syncClock(m);
      renderMentions(m);
      renderIncidents(i);
      document.body.dataset.loaded = "1";
    } catch (e) {
      say(String(e.message || e));
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }
  function connect() {
    const live = document.getElementById("live");
    const es = new EventSource("/api/events?token=" + encodeURIComponent(token));
    es.addEventListener("hello", () => { live.textContent = "实时"; live.className = "on";
                                         refresh(); });
    es.addEventListener("change", () => refresh());
    es.onerror = () => { live.textContent = "重连中"; live.className = "off"; };
  }
  setInterval(tickCountdowns, 250);
  refresh();
  connect();
})();
</script>
</body>
</html>
"""


def render_page(nonce: str) -> str:
    """The page with this response's CSP nonce on its style and script."""
    return PAGE.replace("__NONCE__", nonce)
