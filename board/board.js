// yujing's board: the city's map and its active warnings, live.
// Plain JavaScript and SVG, no build step and nothing fetched from the
// internet: served by yujing from the binary (src/board.rs).
"use strict";

const GRADES = ["blue", "yellow", "orange", "red"];
// Rows drawn at most (most severe and newest first): a longer list is
// for the filters, not for scrolling, and would slow every update.
const ROWS = 300;
const COLOURS = { blue: "#2f7bea", yellow: "#f2c200", orange: "#f07f13", red: "#e0262a", none: "#2b3a4a" };
const TEXT = {
  "zh-CN": {
    title: "预警值班屏", district: "区县", category: "类别", min_grade: "最低级别", all: "全部",
    sign_in: "登录", sign_out: "退出", token_placeholder: "单位令牌", none: "当前无预警",
    lost: "与 yujing 的连接已断开，正在重连…", blue: "蓝色预警 IV级", yellow: "黄色预警 III级",
    orange: "橙色预警 II级", red: "红色预警 I级", since: "已持续", value: "数值", threshold: "阈值",
    crossing: "预计越限", state: "处置", assignee: "责任单位", deadline: "时限", overdue: "已超时",
    acknowledge: "签收", dispatch: "派遣", on_site: "到场", confirmed: "确认属实", false_alarm: "误报",
    sensor_fault: "设备故障", refer: "吹哨转办", refer_to: "部门编号", on_site_state: "已到场",
    note: "备注", to: "派往", assigned: "待签收", acknowledged: "已签收", dispatched: "已派遣",
    handled: "已处置", env: "环境", met: "气象", infra: "设施", data: "数据质量",
    refused: "操作被拒绝", faulty: "设备异常", timeline: "近24小时", raised: "发布",
    escalated: "升级", deescalated: "降级", resolved: "解除", no_history: "24小时内无变化",
  },
  en: {
    title: "Warning board", district: "District", category: "Category", min_grade: "Min. grade", all: "All",
    sign_in: "Sign in", sign_out: "Sign out", token_placeholder: "unit token", none: "No active warnings",
    lost: "Connection to yujing lost, reconnecting…", blue: "Blue IV", yellow: "Yellow III",
    orange: "Orange II", red: "Red I", since: "active for", value: "value", threshold: "threshold",
    crossing: "expected crossing", state: "response", assignee: "assignee", deadline: "due", overdue: "overdue",
    acknowledge: "Acknowledge", dispatch: "Dispatch", on_site: "On site", confirmed: "Confirmed", false_alarm: "False alarm",
    sensor_fault: "Sensor fault", refer: "Refer", refer_to: "department id", on_site_state: "on site",
    note: "note", to: "to", assigned: "assigned", acknowledged: "acknowledged", dispatched: "dispatched",
    handled: "handled", env: "environment", met: "weather", infra: "infrastructure", data: "data quality",
    refused: "refused", faulty: "sensor fault", timeline: "last 24 h", raised: "raised",
    escalated: "escalated", deescalated: "de-escalated", resolved: "resolved", no_history: "no change in 24 h",
  },
};

const state = {
  lang: localStorage.getItem("yujing.lang") || (navigator.language.startsWith("zh") ? "zh-CN" : "en"),
  sensors: [], warnings: new Map(), responses: new Map(),
  token: sessionStorage.getItem("yujing.token") || "", unit: null, mine: new Set(),
  filter: { district: "", category: "", grade: 0 },
  selected: null, // a grid whose timeline is open
};
const $ = (id) => document.getElementById(id);
const t = (key) => (TEXT[state.lang] || TEXT.en)[key] || key;
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// ---- the map ------------------------------------------------------------
let cells = new Map();    // grid → circle element
let dots = new Map();     // sensor id → circle element
let gridOf = new Map();   // sensor id → grid
let areaGrids = new Map(); // "level:key" → the grids of that area
let areaSensors = new Map(); // "level:key" → the sensors of that area

function drawMap() {
  const svg = $("map");
  svg.textContent = "";
  cells = new Map(); dots = new Map(); gridOf = new Map(); areaGrids = new Map(); areaSensors = new Map();
  for (const s of state.sensors) {
    for (const key of [`sensor:${s.id}`, `grid:${s.grid}`, `street:${s.street}`,
      `district:${s.district}`, `district:${s.district_code}`]) {
      if (!areaGrids.has(key)) { areaGrids.set(key, new Set()); areaSensors.set(key, []); }
      areaGrids.get(key).add(s.grid);
      areaSensors.get(key).push(s.id);
    }
  }
  if (!state.sensors.length) return;
  const lats = state.sensors.map((s) => s.lat), lons = state.sensors.map((s) => s.lon);
  for (const f of (state.districts && state.districts.features) || []) {
    const g = f.geometry || {};
    const rings = g.type === "Polygon" ? g.coordinates : g.type === "MultiPolygon" ? g.coordinates.flat() : [];
    for (const [lon, lat] of rings.flat()) { lons.push(lon); lats.push(lat); }
  }
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const w = Math.max((maxLon - minLon) * k, 1e-6), h = Math.max(maxLat - minLat, 1e-6);
  const scale = Math.min(900 / w, 600 / h);
  let x = (lon) => 50 + (lon - minLon) * k * scale;
  let y = (lat) => 650 - (lat - minLat) * scale;
  const groups = (key) => {
    const m = new Map();
    for (const s of state.sensors) { if (!m.has(s[key])) m.set(s[key], []); m.get(s[key]).push(s); }
    return m;
  };
  const ns = "http://www.w3.org/2000/svg";
  const el = (name, attrs) => {
    const e = document.createElementNS(ns, name);
    for (const [a, v] of Object.entries(attrs)) e.setAttribute(a, v);
    svg.appendChild(e);
    return e;
  };
  const grids = groups("grid");
  const spacing = Math.max(8, Math.min(40, Math.sqrt((900 * 600) / Math.max(grids.size, 1)) / 2));
  // A registry whose grids share one place (no coordinates worth the
  // name): the grids on a lattice, by district and street, instead.
  const places = new Set(state.sensors.map((s) => `${s.lat},${s.lon}`));
  let at = null;
  if (places.size < grids.size) {
    const order = [...grids.keys()].sort((a, b) => {
      const [p, q] = [grids.get(a)[0], grids.get(b)[0]];
      return p.district.localeCompare(q.district) || p.street.localeCompare(q.street) || a.localeCompare(b);
    });
    const cols = Math.ceil(Math.sqrt(order.length * 1.5));
    at = new Map(order.map((g, i) => [g, [80 + (i % cols) * (840 / Math.max(cols - 1, 1)),
      80 + Math.floor(i / cols) * (540 / Math.max(Math.ceil(order.length / cols) - 1, 1))]]));
    const sensorAt = new Map(state.sensors.map((s) => [s.id, at.get(s.grid)]));
    x = (lon, id) => sensorAt.get(id)[0];
    y = (lat, id) => sensorAt.get(id)[1];
  }
  // District boundaries from the operator's GeoJSON, under the cells.
  if (!at && state.districts && Array.isArray(state.districts.features)) {
    for (const f of state.districts.features) {
      const g = f.geometry || {};
      const polygons = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      const d = polygons.map((rings) => rings.map((ring) =>
        "M" + ring.map(([lon, lat]) => `${x(lon).toFixed(1)},${y(lat).toFixed(1)}`).join("L") + "Z").join("")).join("");
      if (!d) continue;
      const p = el("path", { class: "district", d });
      const title = document.createElementNS(ns, "title");
      title.textContent = (f.properties && f.properties.name) || "";
      p.appendChild(title);
    }
  }
  for (const [grid, members] of grids) {
    const cx = members.reduce((a, s) => a + x(s.lon, s.id), 0) / members.length;
    const cy = members.reduce((a, s) => a + y(s.lat, s.id), 0) / members.length;
    const c = el("circle", { class: "cell", cx, cy, r: spacing, "data-grid": grid, fill: COLOURS.none });
    c.addEventListener("click", () => openTimeline(grid));
    const title = document.createElementNS(ns, "title");
    title.textContent = `${grid} · ${members[0].street} · ${members[0].district}`;
    c.appendChild(title);
    cells.set(grid, c);
    for (const s of members) gridOf.set(s.id, grid);
  }
  for (const s of state.sensors) {
    dots.set(s.id, el("circle", { class: "sensor", cx: x(s.lon, s.id), cy: y(s.lat, s.id), r: 2.5, "data-sensor": s.id }));
  }
  for (const [district, members] of groups("district")) {
    const label = el("text", {
      class: "district-label",
      x: members.reduce((a, s) => a + x(s.lon, s.id), 0) / members.length,
      y: Math.min(...members.map((s) => y(s.lat, s.id))) - spacing - 4,
    });
    label.textContent = district;
  }
}

// The grids (and sensors) a warning's area covers.
const gridsOf = (a) => areaGrids.get(`${a.group.by}:${a.group.key}`) || [];
const sensorsOf = (a) => areaSensors.get(`${a.group.by}:${a.group.key}`) || [];

function paintMap(shown) {
  const worst = new Map(), faulty = new Set();
  for (const a of shown) {
    if (a.rule.category === "data") {
      // Data-quality warnings never colour the map as pollution.
      for (const id of sensorsOf(a)) faulty.add(id);
      continue;
    }
    const g = GRADES.indexOf(a.grade);
    for (const grid of gridsOf(a)) worst.set(grid, Math.max(worst.get(grid) ?? -1, g));
  }
  for (const [grid, c] of cells) {
    const g = worst.get(grid);
    const grade = g === undefined ? "none" : GRADES[g];
    if (c.dataset.grade !== grade) { c.dataset.grade = grade; c.setAttribute("fill", COLOURS[grade]); }
  }
  for (const [id, d] of dots) d.classList.toggle("fault", faulty.has(id));
}

// ---- the list -----------------------------------------------------------
// "14:05 (23 min)" for a deadline, local time.
function due(iso) {
  const d = new Date(iso), left = Math.round((d - Date.now()) / 60000);
  const hm = d.toLocaleTimeString(state.lang, { hour: "2-digit", minute: "2-digit" });
  return `${hm} (${left >= 0 ? left + " min" : t("overdue") + " " + -left + " min"})`;
}

function since(iso) {
  const m = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// The alert's texts in the page's language (yujing writes them per language).
const textOf = (a) => (a.texts && (a.texts[state.lang] || a.texts.en || Object.values(a.texts)[0])) || null;

function row(a) {
  const r = state.responses.get(a.warning_id);
  const overdue = r && r.deadline && Date.parse(r.deadline) < Date.now();
  const text = textOf(a);
  const area = text ? text.area : `${a.group.by} ${a.group.key}${a.group.district ? " · " + a.group.district : ""}`;
  const what = text ? text.event : (a.rule.description || a.rule.id);
  const instruction = text && text.instruction ? `<div class="meta instruction">${esc(text.instruction)}</div>` : "";
  const trend = a.trend && a.trend.expected_crossing_at ? ` · ${t("crossing")} ${esc(a.trend.expected_crossing_at)}` : "";
  let resp = "";
  if (r) {
    resp = `<div class="meta response">${t("state")}: <b>${esc(t(r.state))}</b> · ${t("assignee")}: ${esc(r.assignee)}` +
      (r.deadline ? ` · ${t("deadline")} ${esc(due(r.deadline))}` : "") + "</div>";
  }
  let actions = "";
  if (state.token && state.mine.has(a.warning_id)) {
    // The steps the response's state allows (the API refuses the others).
    const steps = {
      assigned: ["acknowledge"],
      acknowledged: ["dispatch", "on_site", "refer", "confirmed", "false_alarm", "sensor_fault"],
      dispatched: ["on_site", "refer", "confirmed", "false_alarm", "sensor_fault"],
      on_site: ["refer", "confirmed", "false_alarm", "sensor_fault"],
    }[r ? r.state : "assigned"] || [];
    const b = (action) => `<button data-action="${action}">${esc(t(action))}</button>`;
    if (steps.length) {
      actions = `<div class="actions">${steps.map(b).join("")}` +
        `<input class="note" placeholder="${esc(t("note"))}">` +
        (steps.includes("refer") ? `<input class="department" placeholder="${esc(t("refer_to"))}">` : "") + "</div>";
    }
  }
  return `<li class="warning${overdue ? " overdue" : ""}" data-warning-id="${esc(a.warning_id)}" data-grade="${esc(a.grade)}" style="border-left-color:${COLOURS[a.grade]}">` +
    `<div class="head"><span class="grade g-${esc(a.grade)}">${esc(t(a.grade))}</span>` +
    `<span class="rule">${esc(what)}</span></div>` +
    `<div class="meta">${esc(area)} · ${t("value")} ${esc(a.value)} / ${t("threshold")} ${esc(a.threshold)}${esc(a.rule.unit ? " " + a.rule.unit : "")}` +
    ` · ${t("since")} ${since(a.started_at)}${trend}</div>${instruction}${resp}${actions}</li>`;
}

function visible() {
  const f = state.filter;
  return [...state.warnings.values()].filter((a) =>
    (!f.district || a.group.district === f.district || a.group.district_code === f.district) &&
    (!f.category || a.rule.category === f.category) && GRADES.indexOf(a.grade) >= f.grade);
}

let scheduled = false;
function render() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    const shown = visible().sort((a, b) =>
      GRADES.indexOf(b.grade) - GRADES.indexOf(a.grade) || b.event_time.localeCompare(a.event_time));
    $("warnings").innerHTML = shown.slice(0, ROWS).map(row).join("") +
      (shown.length > ROWS ? `<li class="more">+${shown.length - ROWS}</li>` : "");
    $("empty").hidden = shown.length > 0;
    paintMap(shown);
    const counts = GRADES.map((g) => [g, shown.filter((a) => a.grade === g).length]);
    const byDistrict = new Map();
    for (const a of shown) {
      const d = a.group.district || a.group.key;
      byDistrict.set(d, (byDistrict.get(d) || 0) + 1);
    }
    $("counts").innerHTML = counts.map(([g, n]) => `<span class="g-${g}" data-count="${g}">${esc(t(g))} ${n}</span>`).join("") +
      [...byDistrict].sort((a, b) => b[1] - a[1]).slice(0, 8)
        .map(([d, n]) => `<span class="district-count" data-district="${esc(d)}">${esc(d)} ${n}</span>`).join("");
  });
}

// ---- an area's last 24 hours ----------------------------------------------
async function openTimeline(grid) {
  state.selected = grid;
  for (const [g, c] of cells) c.classList.toggle("selected", g === grid);
  const history = await (await fetch("/api/v1/board/timeline")).json();
  // The transitions of every warning whose area covers the grid.
  const mine = history.filter((h) => {
    const grids = areaGrids.get(`${h.group.by}:${h.group.key}`);
    return grids && grids.has(grid);
  }).reverse();
  const first = state.sensors.find((s) => s.grid === grid);
  $("timeline-area").textContent = `${grid}${first ? " · " + first.street + " · " + first.district : ""}`;
  $("timeline-list").innerHTML = mine.length ? mine.map((h) => {
    const grade = h.grade || h.previous_grade || "none";
    return `<li data-transition="${esc(h.transition)}"><span class="dot" style="background:${COLOURS[grade]}"></span>` +
      `${esc(h.event_time)} · ${esc(t(h.transition.replace("-", "")))} · ${esc(h.rule)} · ${esc(h.group.by)} ${esc(h.group.key)}` +
      `${h.value != null ? " · " + esc(h.value) : ""}</li>`;
  }).join("") : `<li>${esc(t("no_history"))}</li>`;
  $("timeline").hidden = false;
}

function closeTimeline() {
  state.selected = null;
  $("timeline").hidden = true;
  for (const c of cells.values()) c.classList.remove("selected");
}

// ---- text, filters ------------------------------------------------------
function applyText() {
  document.documentElement.lang = state.lang;
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  for (const e of document.querySelectorAll("[data-tp]")) e.placeholder = t(e.dataset.tp);
  $("lang").value = state.lang;
  $("legend").innerHTML = GRADES.map((g) => `<span style="background:${COLOURS[g]}"></span>${esc(t(g))}`).join("") +
    `<span style="border:2px solid #ff4fd8"></span>${esc(t("faulty"))}`;
  $("connection").textContent = t("lost");
  fillFilters();
  render();
  if (state.selected) openTimeline(state.selected);
}

function fillFilters() {
  const districts = [...new Set(state.sensors.map((s) => s.district))].sort();
  const opt = (v, label, sel) => `<option value="${esc(v)}"${sel ? " selected" : ""}>${esc(label)}</option>`;
  $("f-district").innerHTML = opt("", t("all")) + districts.map((d) => opt(d, d, d === state.filter.district)).join("");
  $("f-category").innerHTML = opt("", t("all")) + ["env", "met", "infra", "data"].map((c) => opt(c, t(c), c === state.filter.category)).join("");
  $("f-grade").innerHTML = GRADES.map((g, i) => opt(i, t(g), i === state.filter.grade)).join("");
}

// ---- data ---------------------------------------------------------------
async function loadSnapshot() {
  const s = await (await fetch("/api/v1/board")).json();
  const first = !state.sensors.length;
  state.sensors = s.sensors;
  state.districts = s.districts;
  state.warnings = new Map(s.warnings.map((a) => [a.warning_id, a]));
  state.responses = new Map(Object.entries(s.responses || {}));
  if (first) { drawMap(); fillFilters(); }
  render();
}

// The warnings the signed-in unit may act on (the responders' API).
async function loadMine() {
  if (!state.token) { state.mine = new Set(); return; }
  const resp = await fetch("/api/v1/warnings", { headers: { authorization: `Bearer ${state.token}` } });
  if (resp.status === 401) { signOut(); showError(t("refused")); return; }
  const body = await resp.json();
  state.mine = new Set(body.warnings.filter((w) => w.state !== "handled").map((w) => w.warning_id));
  for (const w of body.warnings) {
    state.responses.set(w.warning_id, { ...state.responses.get(w.warning_id), state: w.state, assignee: w.assignee });
  }
  render();
}

function connect() {
  const events = new EventSource("/api/v1/board/events");
  events.onopen = () => { $("connection").hidden = true; loadSnapshot().then(loadMine); };
  events.onerror = () => { $("connection").hidden = false; };
  events.addEventListener("resync", () => loadSnapshot());
  events.onmessage = (m) => {
    const e = JSON.parse(m.data);
    if (e.kind === "alert") {
      const a = e.alert;
      if (a.grade) state.warnings.set(a.warning_id, a);
      else { state.warnings.delete(a.warning_id); state.responses.delete(a.warning_id); }
      if (state.selected && gridsOf(a).has?.(state.selected)) openTimeline(state.selected);
    } else if (e.kind === "response") {
      const r = e.response;
      if (state.warnings.has(r.warning_id)) state.responses.set(r.warning_id, r);
      if (state.token) loadMine();
    }
    render();
  };
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
  setTimeout(() => { $("error").hidden = true; }, 5000);
}

async function act(id, action, note, department) {
  const body = ["confirmed", "false_alarm", "sensor_fault"].includes(action)
    ? { action: "handled", outcome: action }
    : action === "dispatch" ? { action, to: note || "team" }
    : action === "refer" ? { action, department: department || "" } : { action };
  if (note && action !== "dispatch") body.note = note;
  const resp = await fetch(`/api/v1/warnings/${encodeURIComponent(id)}`, {
    method: "POST", headers: { authorization: `Bearer ${state.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!resp.ok) {
    const why = await resp.json().catch(() => ({}));
    showError(`${t("refused")}: ${why.message || resp.status}`);
  }
  await loadMine();
}

function signOut() {
  state.token = ""; state.mine = new Set();
  sessionStorage.removeItem("yujing.token");
  $("signin").hidden = false; $("signed-in").hidden = true;
  render();
}

// Wheel to zoom (around the pointer), drag to pan: the sensors show as
// the grid cells grow.
(() => {
  const svg = $("map");
  let view = [0, 0, 1000, 700], drag = null;
  const set = () => svg.setAttribute("viewBox", view.join(" "));
  const point = (e) => {
    const r = svg.getBoundingClientRect();
    return [view[0] + ((e.clientX - r.left) / r.width) * view[2], view[1] + ((e.clientY - r.top) / r.height) * view[3]];
  };
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [px, py] = point(e), k = e.deltaY < 0 ? 0.8 : 1.25;
    const w = Math.min(1000, Math.max(50, view[2] * k)), h = w * 0.7;
    view = [px - ((px - view[0]) * w) / view[2], py - ((py - view[1]) * h) / view[3], w, h];
    set();
  }, { passive: false });
  svg.addEventListener("mousedown", (e) => { drag = point(e); });
  svg.addEventListener("mousemove", (e) => {
    if (!drag || !(e.buttons & 1)) return;
    const [px, py] = point(e);
    view = [view[0] + drag[0] - px, view[1] + drag[1] - py, view[2], view[3]];
    set();
  });
  svg.addEventListener("mouseup", () => { drag = null; });
  svg.addEventListener("dblclick", () => { view = [0, 0, 1000, 700]; set(); });
})();

$("warnings").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  const li = button.closest("li");
  act(li.dataset.warningId, button.dataset.action, li.querySelector("input.note")?.value.trim(),
    li.querySelector("input.department")?.value.trim());
});
$("sign-in").addEventListener("click", () => {
  state.token = $("token").value.trim();
  if (!state.token) return;
  sessionStorage.setItem("yujing.token", state.token);
  $("signin").hidden = true; $("signed-in").hidden = false;
  loadMine();
});
$("sign-out").addEventListener("click", signOut);
$("timeline-close").addEventListener("click", closeTimeline);
$("lang").addEventListener("change", (e) => { state.lang = e.target.value; localStorage.setItem("yujing.lang", state.lang); applyText(); });
$("f-district").addEventListener("change", (e) => { state.filter.district = e.target.value; render(); });
$("f-category").addEventListener("change", (e) => { state.filter.category = e.target.value; render(); });
$("f-grade").addEventListener("change", (e) => { state.filter.grade = Number(e.target.value); render(); });
if (state.token) { $("signin").hidden = true; $("signed-in").hidden = false; }
applyText();
connect();
setInterval(render, 30000); // "active for" and deadlines move on
