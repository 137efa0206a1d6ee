// Tubeline KPI page: camera-network KPIs of a day, per unit with drill-down to cameras and one camera's day,
// charts as inline SVG, daily inspection reports. Uses the helpers of app.js (api, el, svg, $, setStatus, query).
// Every call goes through the API and is authenticated, scoped and audited there.
"use strict";

const kpiState = { day: null, unit: "", data: null };

function kpiPct(v, digits = 1) { return v === null || v === undefined ? "–" : `${(v * 100).toFixed(digits)} %`; }

function kpiDur(seconds) {
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${String(m).padStart(2, "0")} min` : m ? `${m} min ${s % 60} s` : `${s % 60} s`;
}

function kpiYesterday() {
  const d = new Date(Date.now() - 86400000);
  return d.toISOString().slice(0, 10);
}

function kpiCard(title, value, note, good) {
  const cls = good === undefined || good === null ? "kpi-card" : `kpi-card ${good ? "good" : "bad"}`;
  return el("div", { class: cls }, el("div", { class: "kpi-title" }, title), el("div", { class: "kpi-value" }, value),
    el("div", { class: "kpi-note muted" }, note || ""));
}

// A horizontal bar chart of shares (0..1) with an optional target line; rows: [{label, value, title}].
function kpiBars(rows, { target = null, width = 520, label = "" } = {}) {
  const rowH = 26, left = 150, right = 60, top = 8, height = top + rows.length * rowH + 24;
  const plot = width - left - right;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "kpi-chart", "aria-label": label });
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const name = svg("text", { x: left - 8, y: y + 17, "text-anchor": "end", class: "kpi-label" });
    name.textContent = r.label.length > 22 ? `${r.label.slice(0, 21)}…` : r.label;
    chart.append(name);
    chart.append(svg("rect", { x: left, y: y + 4, width: plot, height: rowH - 8, class: "kpi-track" }));
    if (r.value !== null && r.value !== undefined) {
      const bad = target !== null && r.value < target;
      const bar = svg("rect", { x: left, y: y + 4, width: Math.max(1, plot * Math.min(1, r.value)), height: rowH - 8,
        class: bad ? "kpi-bar bad" : "kpi-bar" });
      const tip = svg("title", {}); tip.textContent = r.title || `${r.label}: ${kpiPct(r.value)}`; bar.append(tip);
      chart.append(bar);
    }
    const v = svg("text", { x: left + plot + 6, y: y + 17, class: "kpi-label" });
    v.textContent = kpiPct(r.value);
    chart.append(v);
  });
  if (target !== null) {
    const x = left + plot * target;
    chart.append(svg("line", { x1: x, x2: x, y1: top, y2: top + rows.length * rowH, class: "kpi-target" }));
    const t = svg("text", { x, y: top + rows.length * rowH + 16, "text-anchor": "middle", class: "kpi-label" });
    t.textContent = `target ${kpiPct(target, 0)}`;
    chart.append(t);
  }
  return chart;
}

// Cameras by point class as one stacked bar with a legend.
function kpiClasses(byClass) {
  const entries = Object.entries(byClass);
  const total = entries.reduce((a, [, n]) => a + n, 0) || 1;
  const chart = svg("svg", { viewBox: "0 0 520 60", role: "img", class: "kpi-chart", "aria-label": "Cameras by point class" });
  let x = 0;
  entries.forEach(([cls, n], i) => {
    const w = 520 * n / total;
    const rect = svg("rect", { x, y: 4, width: Math.max(1, w), height: 26, class: `kpi-class c${i % 4}` });
    const tip = svg("title", {}); tip.textContent = `class ${cls}: ${n}`; rect.append(tip);
    chart.append(rect);
    const t = svg("text", { x: x + 4, y: 50, class: "kpi-label" }); t.textContent = `${cls}: ${n}`;
    chart.append(t);
    x += w;
  });
  return chart;
}

// One camera's day: online/offline/unknown as a 24 h strip, fault episodes as marks below.
function kpiTimeline(cam, day) {
  const W = 720, start = Date.parse(`${day}T00:00:00Z`), span = 86400000;
  const sx = (iso) => Math.max(0, Math.min(W, (Date.parse(iso) - start) / span * W));
  const chart = svg("svg", { viewBox: `0 0 ${W} 70`, role: "img", class: "kpi-chart kpi-timeline",
    "aria-label": `Day of camera ${cam.camera_id}: online time, faults and recording gaps` });
  chart.append(svg("rect", { x: 0, y: 4, width: W, height: 20, class: "kpi-online" }));
  for (const o of cam.offline) {
    const r = svg("rect", { x: sx(o.start), y: 4, width: Math.max(1, sx(o.end) - sx(o.start)), height: 20, class: `kpi-${o.state}` });
    const tip = svg("title", {}); tip.textContent = `${o.state} ${o.start.slice(11, 19)}–${o.end.slice(11, 19)}${o.reason ? ` (${o.reason})` : ""}`;
    r.append(tip); chart.append(r);
  }
  for (const f of cam.faults) {
    const x1 = sx(f.start), x2 = f.end ? sx(f.end) : W;
    const r = svg("rect", { x: x1, y: 28, width: Math.max(2, x2 - x1), height: 10, class: "kpi-fault" });
    const tip = svg("title", {}); tip.textContent = `${f.fault} from ${f.start.slice(11, 19)} (score ${f.score})`;
    r.append(tip); chart.append(r);
  }
  for (const g of cam.recording_gaps) {
    const r = svg("rect", { x: sx(g.start), y: 42, width: Math.max(2, sx(g.end) - sx(g.start)), height: 8, class: "kpi-gap" });
    const tip = svg("title", {}); tip.textContent = `recording gap ${g.start.slice(11, 19)}–${g.end.slice(11, 19)}`;
    r.append(tip); chart.append(r);
  }
  for (let h = 0; h <= 24; h += 6) {
    const t = svg("text", { x: Math.min(W - 14, h / 24 * W + 2), y: 66, class: "kpi-label" }); t.textContent = `${h}:00`;
    chart.append(t);
  }
  return chart;
}

function kpiCameraRows(cameras, day) {
  return cameras.map((c) => {
    const row = el("tr", { class: c.healthy ? "" : "refused" },
      el("td", {}, el("button", { type: "button", class: "link", onclick: () => kpiCamera(c, day) }, c.name || c.camera_id),
        el("div", { class: "muted" }, c.camera_id)),
      el("td", {}, c.unit), el("td", {}, kpiPct(c.online_rate)), el("td", {}, kpiDur(c.offline_s)),
      el("td", {}, c.faults.length ? c.faults.map((f) => f.fault).join(", ") : "–"),
      el("td", {}, kpiPct(c.recording_completeness)), el("td", {}, String(c.recording_gaps.length)),
      el("td", {}, c.missing_fields.length ? `missing ${c.missing_fields.join(", ")}` : "complete"),
      el("td", {}, el("span", { class: `pill ${c.healthy ? "online" : "offline"}` }, c.healthy ? "healthy" : "attention")));
    return row;
  });
}

function kpiCamera(cam, day) {
  const box = $("#kpi-camera");
  box.hidden = false;
  box.replaceChildren(el("h3", {}, `${cam.name || cam.camera_id} — ${day}`), kpiTimeline(cam, day),
    el("p", { class: "muted" }, "Green: online · red: offline · grey: unknown · orange: picture fault · purple: recording gap."));
  box.scrollIntoView({ block: "nearest" });
}

function kpiRender(data) {
  const section = $("#tab-kpis");
  const k = data.kpis;
  kpiState.data = data;
  setStatus(section, `${data.date} · ${data.unit ? `unit ${data.unit}` : "every unit"} · ${data.scope}`);
  $("#kpi-cards").replaceChildren(
    kpiCard("Cameras", String(k.cameras), `${k.enabled} enabled`),
    kpiCard("Online rate", kpiPct(k.online_rate), `target ${kpiPct(k.online_target, 0)}; ${k.cameras_meeting_target} of ${k.cameras} meet it`,
      k.online_rate === null ? null : k.online_rate >= k.online_target),
    kpiCard("Health rate", kpiPct(k.health_rate), "online and picture fault-free ≥ target"),
    kpiCard("Archive completeness", kpiPct(k.archive_completeness), "one camera, one file"),
    kpiCard("Geo-tag rate", kpiPct(k.geotag_rate), "latitude and longitude filed"),
    kpiCard("Recording completeness", kpiPct(k.recording_completeness), "recorded ÷ online time"),
    kpiCard("Case-video intake", k.case_video_intake === null ? "n/a" : String(k.case_video_intake), k.case_video_note));
  const units = Object.entries(k.units);
  const select = $("#kpi-unit");
  if (!data.unit) {
    const keep = select.value;
    select.replaceChildren(el("option", { value: "" }, "every unit"), ...units.map(([u]) => el("option", { value: u }, u)));
    select.value = keep;
  }
  $("#kpi-charts").replaceChildren(
    el("figure", {}, el("figcaption", {}, "Online rate by unit"),
      kpiBars(units.map(([u, v]) => ({ label: u, value: v.online_rate })), { target: k.online_target, label: "Online rate by unit" })),
    el("figure", {}, el("figcaption", {}, "Health rate by unit"),
      kpiBars(units.map(([u, v]) => ({ label: u, value: v.health_rate })), { label: "Health rate by unit" })),
    el("figure", {}, el("figcaption", {}, "Cameras by point class"), kpiClasses(k.by_class)));
  $("#kpi-units").replaceChildren(...units.map(([u, v]) => el("tr", {},
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => { $("#kpi-unit").value = u; kpiLoad(); } }, u)),
    el("td", {}, String(v.cameras)), el("td", {}, kpiPct(v.online_rate)), el("td", {}, kpiPct(v.health_rate)),
    el("td", {}, kpiPct(v.archive_completeness)), el("td", {}, kpiPct(v.geotag_rate)), el("td", {}, kpiPct(v.recording_completeness)))));
  $("#kpi-cameras").replaceChildren(...kpiCameraRows(data.cameras, data.date));
  $("#kpi-camera").hidden = true;
}

async function kpiLoad() {
  const section = $("#tab-kpis");
  const day = $("#kpi-date").value || kpiYesterday();
  const unit = $("#kpi-unit").value;
  setStatus(section, "Loading…");
  try {
    kpiRender(await api(`/api/kpis?${query({ date: day, unit })}`));
    kpiReports();
  } catch (err) { setStatus(section, err.message, true); }
}

async function kpiReports() {
  try {
    const data = await api("/api/reports");
    $("#kpi-reports").replaceChildren(...data.reports.slice(0, 30).map((r) => el("li", {},
      `${r.day} · ${r.unit === "all" ? "every unit" : `unit ${r.unit}`} · `,
      el("a", { href: r.html, target: "_blank", rel: "noopener" }, "HTML"), " · ",
      el("a", { href: r.csv }, "CSV"))));
    if (!data.reports.length) $("#kpi-reports").replaceChildren(el("li", { class: "muted" }, "No report yet."));
  } catch (err) { setStatus($("#tab-kpis"), err.message, true); }
}

async function kpiMakeReport() {
  const section = $("#tab-kpis");
  const day = $("#kpi-date").value || kpiYesterday();
  const unit = $("#kpi-unit").value;
  const button = $("#kpi-make");
  button.disabled = true;
  try {
    await api(`/api/reports/daily/${day}?${query({ unit })}`, { method: "POST" });
    setStatus(section, `Daily report of ${day} (${unit || "every unit"}) made.`);
    await kpiReports();
  } catch (err) { setStatus(section, err.message, true); } finally { button.disabled = false; }
}

window.tubelineKpi = {
  show() {
    if (!$("#kpi-date").value) $("#kpi-date").value = kpiYesterday();
    kpiLoad();
  },
};

$("#kpi-form").addEventListener("submit", (ev) => { ev.preventDefault(); kpiLoad(); });
$("#kpi-make").addEventListener("click", kpiMakeReport);
