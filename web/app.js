// Tubeline web UI: plain JavaScript, no build step, no external assets.
// Talks only to the API on this origin; every call it makes is authenticated and audited server-side.
"use strict";

const state = { user: null, csrf: null, casePattern: null, cameras: [], events: null, unseen: 0, current: null,
  synopsis: null, synopsisPoll: null, synopsisHit: null };
const SVG = "http://www.w3.org/2000/svg";
// Sections in other files (live.js, timeline.js, console.js …) register here: called with true when shown, false when left.
const tabHooks = {};

// -- small helpers ---------------------------------------------------------------------------------
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function pad(n) { return String(n).padStart(2, "0"); }

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// The browser's time zone as an offset (and its name): every time the UI shows is in it.
function localZone() {
  const off = -new Date().getTimezoneOffset();
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  return `UTC${off >= 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}${name ? ` (${name})` : ""}`;
}

function toIso(localValue) { return localValue ? new Date(localValue).toISOString() : null; }

function caseRef() { return $("#case").value.trim(); }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", json, form } = {}) {
  const headers = {};
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form !== undefined) body = form;
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const res = await fetch(path, { method, headers, body, credentials: "same-origin" });
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) {
    if (res.status === 401 && path !== "/api/session") showLogin("Your session ended; log in again.");
    let msg = (data && data.detail) || `${res.status} ${res.statusText}`;
    if (data && Array.isArray(data.errors)) msg = data.errors.map((e) => `${e.field.split(".").pop()}: ${e.message}`).join("; ");
    throw new ApiError(res.status, msg);
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === "") continue;
    q.append(k, v);
  }
  return q.toString();
}

function setStatus(section, text, isError = false) {
  const node = $(".status", section);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

// -- login and session -----------------------------------------------------------------------------
function showLogin(message = "") {
  state.user = null;
  for (const hook of Object.values(tabHooks)) hook(false);
  if (state.events) { state.events.close(); state.events = null; }
  $("#app-view").hidden = true;
  $("#login-view").hidden = false;
  $("#login-error").textContent = message;
  $("#login-user").focus();
}

async function startSession(session) {
  state.user = session.user;
  state.csrf = session.csrf;
  state.casePattern = new RegExp(session.case_pattern);
  const scope = session.user.scope.all_cameras ? "all cameras" : [...session.user.scope.units.map((u) => `unit ${u}`), ...session.user.scope.cameras].join(", ") || "no cameras";
  $("#who").textContent = `${session.user.name} · ${session.user.role} · ${scope}`;
  $("#who").title = `Times are shown in ${localZone()}`;
  $("#zone-note").textContent = `times in ${localZone()}`;
  const perms = new Set(session.user.permissions);
  for (const tab of $$("#tabs [data-tab]")) tab.hidden = !perms.has(tab.dataset.perm);
  $(".case-field").hidden = !["search_faces", "trajectory", "export"].some((p) => perms.has(p));
  $("#case").value = sessionStorage.getItem("tubeline-case") || "";
  if (["search", "trajectory", "synopsis", "recordings", "alerts", "live"].some((p) => perms.has(p))) await loadCameras().catch(() => {});  // filters and the plot
  if (perms.has("synopsis")) synopsisDefaults();
  if (perms.has("alerts")) startAlerts();
  const wanted = location.hash.slice(1);
  const first = $$("#tabs [data-tab]").find((t) => !t.hidden && (t.dataset.tab === wanted || !wanted)) || $$("#tabs [data-tab]").find((t) => !t.hidden);
  if (first) selectTab(first.dataset.tab);
  // Shown only now: a tab clicked while the session was still loading would be overridden by the first tab.
  $("#login-view").hidden = true;
  $("#app-view").hidden = false;
}

async function init() {
  try {
    await startSession(await api("/api/session"));
  } catch (err) {
    showLogin(err.status === 401 ? "" : err.message);
  }
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const button = $("button", ev.target);
  button.disabled = true;
  try {
    const session = await api("/api/session", { method: "POST", json: { username: $("#login-user").value, password: $("#login-pass").value } });
    $("#login-pass").value = "";
    await startSession(session);
  } catch (err) {
    $("#login-error").textContent = err.message;
  } finally {
    button.disabled = false;
  }
});

$("#logout").addEventListener("click", async () => {
  try { await api("/api/session", { method: "DELETE" }); } catch (_) { /* logged out anyway */ }
  showLogin("Logged out.");
});

$("#case").addEventListener("change", () => sessionStorage.setItem("tubeline-case", caseRef()));

function needCase(section) {
  const c = caseRef();
  if (!c) { setStatus(section, "Enter the case reference (top right) first.", true); $("#case").focus(); return null; }
  if (state.casePattern && !state.casePattern.test(c)) { setStatus(section, `"${c}" is not a valid case reference (e.g. CASE-2024-0042).`, true); $("#case").focus(); return null; }
  return c;
}

// -- tabs ------------------------------------------------------------------------------------------
function selectTab(name) {
  for (const tab of $$("#tabs [data-tab]")) tab.setAttribute("aria-current", tab.dataset.tab === name ? "page" : "false");
  for (const section of $$(".tab")) section.hidden = section.id !== `tab-${name}`;
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "cameras") loadCameras().then(renderCameras).catch((e) => setStatus($("#tab-cameras"), e.message, true));
  if (name === "synopsis") { loadSynopses(); synopsisWindowFromRecordings(); }
  for (const [tab, hook] of Object.entries(tabHooks)) hook(tab === name);
  if (name === "kpis" && window.tubelineKpi) window.tubelineKpi.show();  // web/kpi.js
  const field = $(`#tab-${name} input, #tab-${name} select`);
  if (field) field.focus();
}

$("#tabs").addEventListener("click", (ev) => {
  const tab = ev.target.closest("[data-tab]");
  if (tab) selectTab(tab.dataset.tab);
});

// -- cameras ---------------------------------------------------------------------------------------
async function loadCameras() {
  const data = await api("/api/cameras");
  state.cameras = data.cameras;
  for (const select of $$(".camera-select")) {
    const keep = select.value;
    select.replaceChildren(el("option", { value: "" }, "all in scope"),
      ...data.cameras.map((c) => el("option", { value: c.camera_id }, `${c.name || c.camera_id} (${c.camera_id})`)));
    select.value = keep;
  }
  const syn = $("#synopsis-camera");
  const keep = syn.value;
  syn.replaceChildren(...data.cameras.map((c) => el("option", { value: c.camera_id }, `${c.name || c.camera_id} (${c.camera_id})`)));
  if (keep) syn.value = keep;
  return data;
}

function renderCameras(data) {
  const section = $("#tab-cameras");
  setStatus(section, `${data.count} camera(s) in scope (${data.scope}).`);
  $("#camera-rows").replaceChildren(...data.cameras.map((c) => el("tr", {},
    el("td", {}, c.camera_id), el("td", {}, c.name), el("td", {}, el("span", { class: `pill ${c.status}` }, c.status), c.reason ? ` (${c.reason})` : ""),
    el("td", {}, c.admin_unit || "–"),
    el("td", {}, c.latitude !== null && c.longitude !== null ? `${c.latitude.toFixed(5)}, ${c.longitude.toFixed(5)}` : "–"),
    el("td", {}, c.fps_in !== null ? `${c.fps_in.toFixed(1)} / ${(c.fps_out || 0).toFixed(1)}` : "–"),
    el("td", {}, fmtTime(c.last_seen_at)))));
}

// -- result grid -----------------------------------------------------------------------------------
function hitCard(hit) {
  let title, sub, time;
  if (hit.kind === "plate") { title = hit.text; sub = `${(hit.confidence * 100).toFixed(0)}%${hit.edits ? ` · ${hit.edits} edit(s)` : ""}`; time = hit.captured_at; }
  else if (hit.kind === "track" && hit.class_name === "person") { title = "person"; sub = `top ${hit.upper_colour || "?"} · bottom ${hit.lower_colour || "?"}`; time = hit.started_at; }
  else if (hit.kind === "track") { title = `${hit.colour} ${hit.vehicle_type || hit.class_name}`; sub = hit.plate || ""; time = hit.started_at; }
  else { title = `similarity ${hit.score.toFixed(3)}`; sub = `${hit.match ? "match" : "below threshold"} · quality ${hit.quality.toFixed(2)}`; time = hit.captured_at; }
  const img = hit.crop_url ? el("img", { src: hit.crop_url, alt: `crop: ${title}`, loading: "lazy" }) : el("div", { class: "noimg" }, "no crop");
  return el("button", { type: "button", class: hit.kind === "face" && !hit.match ? "hit weak" : "hit", "data-kind": hit.kind, "data-id": hit.id, onclick: () => openDetail(hit.kind, hit.id) },
    img,
    el("span", { class: "hit-title" }, title),
    sub ? el("span", { class: "hit-sub" }, sub) : null,
    el("span", { class: "hit-meta" }, hit.camera_name || hit.camera_id),
    el("time", { class: "hit-meta", datetime: time }, fmtTime(time)));
}

function renderGrid(section, data, noun) {
  setStatus(section, `${data.count} ${noun}${data.count === 1 ? "" : "s"} (searched ${data.scope}).`);
  $(".grid", section).replaceChildren(...data.hits.map(hitCard));
}

function formValues(form) {
  const fd = new FormData(form);
  const v = Object.fromEntries(fd.entries());
  for (const k of ["start", "end"]) if (k in v) v[k] = toIso(v[k]);
  return v;
}

async function runSearch(section, work) {
  const button = $("button[type=submit]", section);
  button.disabled = true;
  setStatus(section, "Searching…");
  try { await work(); } catch (err) { setStatus(section, err.message, true); } finally { button.disabled = false; }
}

$("#plate-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const section = $("#tab-plates");
  const v = formValues(ev.target);
  runSearch(section, async () => {
    const data = await api(`/api/search/plates?${query({ q: v.q.trim().toUpperCase(), mode: v.mode, max_edits: v.max_edits, lookalikes: v.lookalikes, camera: v.camera, start: v.start, end: v.end })}`);
    renderGrid(section, data, "plate read");
  });
});

$("#vehicle-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const section = $("#tab-vehicles");
  const v = formValues(ev.target);
  runSearch(section, async () => {
    const data = await api(`/api/search/vehicles?${query(v)}`);
    renderGrid(section, data, "vehicle");
  });
});

$("#person-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const section = $("#tab-persons");
  const v = formValues(ev.target);
  runSearch(section, async () => {
    const data = await api(`/api/search/persons?${query(v)}`);
    renderGrid(section, data, "person");
  });
});

function renderQueryFace(section, q) {
  const box = $(".query-face", section);
  box.hidden = false;
  const c = q.components;
  box.replaceChildren(el("strong", {}, `Query face quality ${q.quality.toFixed(2)}`),
    ` · eyes ${c.eye_distance.toFixed(0)} px apart · sharpness ${c.sharpness.toFixed(0)} · yaw ${c.yaw.toFixed(0)}° · threshold ${q.threshold.toFixed(3)} · model ${q.model_id}`);
  state.faceQuery = q.image_sha256;
}

$("#face-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const section = $("#tab-faces");
  const c = needCase(section);
  if (!c) return;
  const fd = new FormData(ev.target);
  for (const k of ["start", "end", "threshold", "camera"]) if (!fd.get(k)) fd.delete(k);
  for (const k of ["start", "end"]) if (fd.get(k)) fd.set(k, toIso(fd.get(k)));
  fd.set("case", c);
  runSearch(section, async () => {
    $(".query-face", section).hidden = true;
    $(".grid", section).replaceChildren();
    const data = await api("/api/search/faces", { method: "POST", form: fd });
    renderQueryFace(section, data.query);
    renderGrid(section, data, "face");
  });
});

// -- sighting detail and clip ------------------------------------------------------------------------
async function openDetail(kind, id) {
  const dialog = $("#detail");
  const params = { kind, id };
  if (kind === "face") { const c = caseRef(); if (c) params.case = c; }
  $("#detail-status").textContent = "";
  const video = $("#detail-video");
  video.hidden = true;
  video.removeAttribute("src");
  $("#download-clip").hidden = true;
  let data;
  try { data = await api(`/api/sighting?${query(params)}`); } catch (err) {
    const section = $(".tab:not([hidden])");
    if (section) setStatus(section, err.message, true);
    return;
  }
  const s = data.sighting;
  state.current = s;
  $("#detail-title").textContent = s.kind === "plate" ? `Plate ${s.text}` : s.kind === "track" ? "Vehicle sighting" : "Face sighting";
  const crop = $("#detail-crop");
  crop.hidden = !s.crop_url;
  if (s.crop_url) crop.src = s.crop_url;
  const rows = [["Camera", `${s.camera_name} (${s.camera_id})`], ["Time", fmtTime(s.time)], ["Position", s.lat !== null ? `${s.lat.toFixed(5)}, ${s.lon.toFixed(5)}` : "unknown"],
    ["Track", s.track_id], ["Clip range", `${fmtTime(s.clip_start)} – ${fmtTime(s.clip_end).slice(11)}`], ["Recording", data.clip_available ? "available" : "none for this range"]];
  if (s.score !== null) rows.push(["Score", s.score.toFixed(3)]);
  $("#detail-fields").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("#play-clip").disabled = !data.clip_available;
  $("#detail-trajectory").hidden = !(state.user.permissions.includes("trajectory") && (s.kind === "plate" || (s.kind === "face" && state.faceQuery)));
  if (!dialog.open) dialog.showModal();
  $("#detail-title").focus();
}

$("#play-clip").addEventListener("click", async () => {
  const s = state.current;
  const status = $("#detail-status");
  const c = caseRef();
  if (!c) { status.textContent = "A clip export needs the case reference (top right)."; status.classList.add("error"); return; }
  status.classList.remove("error");
  status.textContent = "Cutting the clip from the recordings…";
  $("#play-clip").disabled = true;
  try {
    const ex = await api("/api/exports", { method: "POST", json: { kind: s.kind, id: s.id, case: c } });
    const video = $("#detail-video");
    video.src = ex.url;
    video.hidden = false;
    video.muted = true;
    const link = $("#download-clip");
    link.href = ex.url;
    link.hidden = false;
    status.textContent = `Export ${ex.export_id}: ${ex.duration_s.toFixed(1)} s, ${(ex.bytes / 1024).toFixed(0)} KiB, SHA-256 ${ex.sha256.slice(0, 16)}…${ex.transcoded ? " (re-encoded to H.264 for playback)" : ""}`;
    await video.play().catch(() => {});
  } catch (err) {
    status.textContent = err.message;
    status.classList.add("error");
  } finally {
    $("#play-clip").disabled = false;
  }
});

$("#detail").addEventListener("close", () => { const v = $("#detail-video"); v.pause(); });

$("#detail-trajectory").addEventListener("click", () => {
  const s = state.current;
  $("#detail").close();
  selectTab("trajectory");
  if (s.kind === "plate") {
    $("#trajectory-form [name=plate]").value = s.text;
    $("#trajectory-form").requestSubmit();
  } else {
    faceTrajectory();
  }
});

// -- trajectory --------------------------------------------------------------------------------------
$("#trajectory-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const section = $("#tab-trajectory");
  const c = needCase(section);
  if (!c) return;
  const v = formValues(ev.target);
  runSearch(section, async () => {
    const data = await api(`/api/trajectory/plate?${query({ plate: v.plate.trim().toUpperCase(), case: c, start: v.start, end: v.end })}`);
    showTrajectory(section, data);
  });
});

async function faceTrajectory() {
  const section = $("#tab-trajectory");
  const c = needCase(section);
  if (!c || !state.faceQuery) return;
  const fd = new FormData();
  fd.set("query", state.faceQuery);
  fd.set("case", c);
  runSearch(section, async () => showTrajectory(section, await api("/api/trajectory/face", { method: "POST", form: fd })));
}

function showTrajectory(section, data) {
  const subject = data.subject.startsWith("face:") ? "the query face" : data.subject;
  setStatus(section, `${data.count} sighting(s) of ${subject} (searched ${data.scope}).`);
  drawPlot(data.sightings, state.cameras);
  $("#trajectory-list").replaceChildren(...data.sightings.map((s, i) => el("li", {},
    el("button", { type: "button", class: "link", onclick: () => openDetail(s.kind, s.id) }, `${i + 1}. ${fmtTime(s.time)}`),
    ` — ${s.camera_name || s.camera_id}${s.lat === null ? " (no position)" : ""}`)));
}

function niceDistance(metres) {
  const steps = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000];
  return steps.filter((d) => d <= metres).pop() || steps[0];
}

function plotFrame(plot, W, H, metresPerPx) {
  plot.append(svg("rect", { x: 1, y: 1, width: W - 2, height: H - 2, rx: 8, class: "frame" }));
  const north = svg("g", { class: "north" });
  north.append(svg("line", { x1: W - 30, y1: 48, x2: W - 30, y2: 20, "marker-end": "url(#arrow-grey)" }));
  const n = svg("text", { x: W - 30, y: 64, "text-anchor": "middle" });
  n.textContent = "N";
  north.append(n);
  plot.append(north);
  const metres = niceDistance(metresPerPx * 160);
  const px = metres / metresPerPx;
  const scale = svg("g", { class: "scale" });
  scale.append(svg("line", { x1: 20, y1: H - 20, x2: 20 + px, y2: H - 20 }),
    svg("line", { x1: 20, y1: H - 26, x2: 20, y2: H - 14 }), svg("line", { x1: 20 + px, y1: H - 26, x2: 20 + px, y2: H - 14 }));
  const label = svg("text", { x: 20 + px / 2, y: H - 28, "text-anchor": "middle" });
  label.textContent = metres >= 1000 ? `${metres / 1000} km` : `${metres} m`;
  scale.append(label);
  plot.append(scale);
}

function arrowMarker(id, cls) {
  const marker = svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: cls }));
  return marker;
}

function drawPlot(sightings, cameras) {
  const plot = $("#plot");
  const title = $("#plot-title");
  plot.replaceChildren(title);
  const W = 800, H = 520, M = 70;
  const pts = [...cameras.filter((c) => c.latitude !== null && c.longitude !== null).map((c) => [c.latitude, c.longitude]),
    ...sightings.filter((s) => s.lat !== null && s.lon !== null).map((s) => [s.lat, s.lon])];
  if (!pts.length) {
    const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "plot-empty" });
    t.textContent = "No camera positions in the registry";
    plot.append(t);
    return;
  }
  const lats = pts.map((p) => p[0]), lons = pts.map((p) => p[1]);
  const minLat = Math.min(...lats), minLon = Math.min(...lons);
  const kx = Math.cos((((minLat + Math.max(...lats)) / 2) * Math.PI) / 180);
  const spanX = Math.max((Math.max(...lons) - minLon) * kx, 2e-3);
  const spanY = Math.max(Math.max(...lats) - minLat, 2e-3);
  const scale = Math.min((W - 2 * M) / spanX, (H - 2 * M) / spanY);
  const x0 = (W - spanX * scale) / 2, y0 = (H - spanY * scale) / 2;
  const X = (lon) => x0 + (lon - minLon) * kx * scale;
  const Y = (lat) => H - y0 - (lat - minLat) * scale;
  const defs = svg("defs");
  defs.append(arrowMarker("arrow", "arrow-head"), arrowMarker("arrow-grey", "arrow-grey"));
  plot.append(defs);
  plotFrame(plot, W, H, 111320 / scale);
  if (typeof drawBasemap === "function") {  // map.js: the same offline basemap as the camera map, under everything
    drawBasemap(plot, (lon, lat) => [X(lon), Y(lat)], W, H);
    const base = $("#plot > .basemap");
    if (base) $("#plot > .frame").after(base);
  }
  for (const c of cameras) {
    if (c.latitude === null || c.longitude === null) continue;
    const g = svg("g", { class: "camera" });
    g.append(svg("circle", { cx: X(c.longitude), cy: Y(c.latitude), r: 6 }));
    const label = svg("text", { x: X(c.longitude) + 17, y: Y(c.latitude) + 20 });
    label.textContent = c.name || c.camera_id;
    g.append(label);
    plot.append(g);
  }
  const placed = sightings.filter((s) => s.lat !== null && s.lon !== null);
  for (let i = 1; i < placed.length; i++) {
    const a = placed[i - 1], b = placed[i];
    const ax = X(a.lon), ay = Y(a.lat), bx = X(b.lon), by = Y(b.lat);
    const len = Math.hypot(bx - ax, by - ay);
    if (len < 30) continue;
    const ux = (bx - ax) / len, uy = (by - ay) / len, r = 14;
    plot.append(svg("line", { x1: ax + ux * r, y1: ay + uy * r, x2: bx - ux * (r + 2), y2: by - uy * (r + 2), class: "leg", "marker-end": "url(#arrow)" }));
  }
  const byPlace = new Map();
  placed.forEach((s) => {
    const key = `${s.lat},${s.lon}`;
    if (!byPlace.has(key)) byPlace.set(key, { s, order: [] });
    byPlace.get(key).order.push(sightings.indexOf(s) + 1);
  });
  for (const { s, order } of byPlace.values()) {
    const g = svg("g", { class: "sighting" });
    g.append(svg("circle", { cx: X(s.lon), cy: Y(s.lat), r: 12 }));
    const n = svg("text", { x: X(s.lon), y: Y(s.lat) + 4, "text-anchor": "middle" });
    n.textContent = order.length > 1 ? `${order[0]}+` : String(order[0]);
    const t = svg("title");
    t.textContent = order.map((k) => `${k}. ${fmtTime(sightings[k - 1].time)} ${s.camera_name}`).join("\n");
    g.append(n, t);
    plot.append(g);
  }
  title.textContent = `Trajectory: ${placed.length} sighting(s) on ${byPlace.size} camera(s), arrows in time order`;
}

// -- synopsis ------------------------------------------------------------------------------------------
function localValue(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function synopsisDefaults() {
  const form = $("#synopsis-form");
  if (form.start.value) return;
  const now = new Date();
  form.end.value = localValue(now);
  form.start.value = localValue(new Date(now.getTime() - 3600 * 1000));
}

// Until the user edits the window, it follows the chosen camera's newest hour of recording.
let synopsisWindowEdited = false;
for (const name of ["start", "end"]) $(`#synopsis-form [name=${name}]`).addEventListener("input", () => { synopsisWindowEdited = true; });

async function synopsisWindowFromRecordings() {
  const form = $("#synopsis-form");
  if (synopsisWindowEdited || !form.camera_id.value) return;
  try {
    const cov = await api(`/api/synopses/coverage?${query({ camera: form.camera_id.value })}`);
    if (!cov.latest_end || synopsisWindowEdited) return;
    const end = new Date(Math.ceil(new Date(cov.latest_end).getTime() / 1000) * 1000);
    const last = cov.spans[cov.spans.length - 1];
    const start = new Date(Math.max(Math.floor(new Date(last.start).getTime() / 1000) * 1000, end.getTime() - 3600 * 1000));
    form.start.value = localValue(start);
    form.end.value = localValue(end);
  } catch (_) { /* keep the last hour */ }
}

$("#synopsis-camera").addEventListener("change", synopsisWindowFromRecordings);

function synopsisShows(s) {
  const parts = [s.classes.length ? s.classes.join(", ") : "everything"];
  if (s.colours.length) parts.push(s.colours.join(", "));
  if (s.plate) parts.push(`plate ~${s.plate}`);
  if (s.zone) parts.push("zone");
  return parts.join(" · ");
}

async function loadSynopses() {
  const section = $("#tab-synopsis");
  try {
    const data = await api("/api/synopses?limit=50");
    $("#synopsis-rows").replaceChildren(...data.synopses.map((s) => el("tr", {
      "aria-current": state.synopsis && state.synopsis.synopsis_id === s.synopsis_id ? "true" : "false",
      tabindex: 0, title: "Watch", "data-id": s.synopsis_id,
      onclick: () => openSynopsis(s.url), onkeydown: (ev) => { if (ev.key === "Enter") openSynopsis(s.url); } },
    el("td", {}, s.camera_name || s.camera_id),
    el("td", {}, `${fmtTime(s.start)} – ${fmtTime(s.end).slice(11)}`),
    el("td", {}, synopsisShows(s)),
    el("td", {}, el("span", { class: `pill ${s.state}`, title: s.error || "" }, s.state === "running" && s.progress !== null ? `${Math.round(s.progress * 100)} %` : s.state)))));
    if (!data.count) $("#synopsis-rows").replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "None yet: build one with the form above.")));
  } catch (err) { setStatus(section, err.message, true); }
}

$("#synopsis-refresh").addEventListener("click", loadSynopses);

$("#synopsis-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const section = $("#tab-synopsis");
  const v = formValues(ev.target);
  const body = { camera_id: v.camera_id, start: v.start, end: v.end, classes: v.classes ? [v.classes] : [], colours: v.colour ? [v.colour] : [] };
  if (v.plate.trim()) body.plate = v.plate.trim().toUpperCase();
  if (v.length_s) body.length_s = Number(v.length_s);
  if (caseRef()) body.case = caseRef();
  runSearch(section, async () => {
    const s = await api("/api/synopses", { method: "POST", json: body });
    await openSynopsis(s.url);
    loadSynopses();
  });
});

function stopSynopsisPoll() {
  if (state.synopsisPoll) { clearTimeout(state.synopsisPoll); state.synopsisPoll = null; }
}

async function openSynopsis(url) {
  const section = $("#tab-synopsis");
  stopSynopsisPoll();
  let data;
  try { data = await api(url); } catch (err) { setStatus(section, err.message, true); return; }
  const s = data.synopsis || data;
  const changed = !state.synopsis || state.synopsis.synopsis_id !== s.synopsis_id;
  state.synopsis = s;
  for (const row of $$("#synopsis-rows tr")) row.setAttribute("aria-current", row.dataset.id === s.synopsis_id ? "true" : "false");
  if (changed) { $("#synopsis-hit").hidden = true; $("#synopsis-mark").hidden = true; }
  if (s.state === "queued" || s.state === "running") {
    const doing = s.state === "queued" ? "waiting for a builder" : `building${s.progress !== null ? ` ${Math.round(s.progress * 100)} %` : ""}${s.phase ? ` (${s.phase})` : ""}`;
    setStatus(section, `Synopsis of ${s.camera_name} ${fmtTime(s.start)} – ${fmtTime(s.end).slice(11)}: ${doing}…`);
    state.synopsisPoll = setTimeout(() => openSynopsis(url), 1500);
    return;
  }
  if (s.state !== "done") {
    setStatus(section, `Synopsis ${s.state}: ${s.error || "no reason given"}`, true);
    loadSynopses();
    return;
  }
  state.synopsis.detail = data;
  const m = data.metrics;
  setStatus(section, `${data.objects.length} object(s) of ${s.camera_name}, ${fmtTime(data.window_start)} – ${fmtTime(data.window_end).slice(11)}, in ${data.duration_s.toFixed(1)} s.`);
  $("#synopsis-facts").textContent = `${m.source_s.toFixed(0)} s of recording condensed ×${m.condensation.toFixed(1)} · `
    + `${m.time_lapsed} time-lapsed · collision ratio ${m.collision_ratio.toFixed(3)} (source ${m.source_collision_ratio.toFixed(3)}) · `
    + `${m.chronology_violations} of ${m.chronology_pairs} pairs out of order · ${data.width}×${data.height} at ${data.fps} fps`;
  renderSynopsisObjects(data);
  const video = $("#synopsis-video");
  if (changed || !video.src) {
    video.src = s.video_url;
    video.playbackRate = Number($("#synopsis-rate").value);
  }
  $("#synopsis-frame").hidden = false;
  $("#synopsis-controls").hidden = false;
  loadSynopses();
}

function renderSynopsisObjects(data) {
  $("#synopsis-objects-box").hidden = !data.objects.length;
  $("#synopsis-objects").replaceChildren(...data.objects.map((o) => el("li", {},
    el("button", { type: "button", class: "link", "data-track": o.track_id, onclick: () => showSynopsisObject(o) },
      `${fmtTime(o.original_start).slice(11)}–${fmtTime(o.original_end).slice(11)}`),
    ` ${o.colour !== "unknown" ? o.colour + " " : ""}${o.class_name}${o.plate ? ` ${o.plate}` : ""}, shown at ${o.synopsis_start_s.toFixed(1)} s`)));
}

// An entry of the object list: jump to the middle of its appearance and pick it there, as a click would.
async function showSynopsisObject(o) {
  const s = state.synopsis;
  const idx = await api(`${s.url}/objects/${o.number}?${query({ t: ((o.synopsis_start_s + o.synopsis_end_s) / 2).toFixed(3) })}`).catch((err) => {
    $("#synopsis-hit-status").textContent = err.message; return null;
  });
  if (!idx) return;
  synVideo.pause();
  synVideo.currentTime = (idx.frame + 0.5) / s.detail.fps;
  showSynopsisHit(idx, { t: (idx.frame + 0.5) / s.detail.fps, number: o.number });
}

const synVideo = $("#synopsis-video");

function synopsisClock() {
  const d = synVideo.duration || 0;
  $("#synopsis-seek").max = String(d || 1);
  $("#synopsis-seek").value = String(synVideo.currentTime);
  $("#synopsis-time").textContent = `${synVideo.currentTime.toFixed(1)} / ${d.toFixed(1)} s`;
  $("#synopsis-play").textContent = synVideo.paused ? "Play" : "Pause";
}

for (const evName of ["timeupdate", "loadedmetadata", "play", "pause", "ended"]) synVideo.addEventListener(evName, synopsisClock);
synVideo.addEventListener("play", () => { $("#synopsis-mark").hidden = true; });
$("#synopsis-play").addEventListener("click", () => { if (synVideo.paused) synVideo.play().catch(() => {}); else synVideo.pause(); });
$("#synopsis-seek").addEventListener("input", (ev) => { synVideo.currentTime = Number(ev.target.value); $("#synopsis-mark").hidden = true; });
$("#synopsis-rate").addEventListener("change", (ev) => { synVideo.playbackRate = Number(ev.target.value); });

function markBox(box) {
  const d = state.synopsis.detail;
  const sx = synVideo.clientWidth / d.width, sy = synVideo.clientHeight / d.height;
  const mark = $("#synopsis-mark");
  Object.assign(mark.style, { left: `${box[0] * sx - 3}px`, top: `${box[1] * sy - 3}px`, width: `${(box[2] - box[0]) * sx + 6}px`, height: `${(box[3] - box[1]) * sy + 6}px` });
  mark.hidden = false;
}

synVideo.addEventListener("click", async (ev) => {
  const s = state.synopsis;
  if (!s || !s.detail) return;
  synVideo.pause();
  const rect = synVideo.getBoundingClientRect();
  const x = ((ev.clientX - rect.left) * s.detail.width) / rect.width;
  const y = ((ev.clientY - rect.top) * s.detail.height) / rect.height;
  const t = synVideo.currentTime;
  const status = $("#synopsis-hit-status");
  try {
    const hit = await api(`${s.url}/at?${query({ t: t.toFixed(3), x: x.toFixed(1), y: y.toFixed(1) })}`);
    showSynopsisHit(hit, { t, x, y });
  } catch (err) {
    $("#synopsis-mark").hidden = true;
    $("#synopsis-hit").hidden = false;
    $("#synopsis-hit-title").textContent = "Nothing there";
    $("#synopsis-hit-fields").replaceChildren();
    $("#synopsis-clip-button").hidden = true;
    $("#synopsis-sighting").hidden = true;
    $("#synopsis-clip").hidden = true;
    status.textContent = err.status === 404 ? "No object under that point at this moment: click on a person or vehicle." : err.message;
    status.classList.toggle("error", err.status !== 404);
  }
});

function showSynopsisHit(hit, click) {
  state.synopsisHit = { hit, click };
  const o = hit.object;
  markBox(hit.box);
  $("#synopsis-hit").hidden = false;
  $("#synopsis-hit-title").textContent = `${o.colour !== "unknown" ? o.colour + " " : ""}${o.class_name} at ${fmtTime(hit.original_time)}`;
  const rows = [["Original time", fmtTime(hit.original_time)], ["In view", `${fmtTime(o.original_start)} – ${fmtTime(o.original_end).slice(11)}`],
    ["Track", o.track_id], ["Shown", `${o.synopsis_start_s.toFixed(1)} – ${o.synopsis_end_s.toFixed(1)} s${o.speed > 1 ? ` (time-lapse ×${o.speed.toFixed(1)})` : ""}`]];
  if (o.plate) rows.push(["Plate", o.plate]);
  $("#synopsis-hit-fields").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const perms = state.user.permissions;
  $("#synopsis-clip-button").hidden = !perms.includes("export");
  $("#synopsis-sighting").hidden = !perms.includes("view");
  $("#synopsis-clip").hidden = true;
  $("#synopsis-clip").removeAttribute("src");
  const status = $("#synopsis-hit-status");
  status.classList.remove("error");
  status.textContent = perms.includes("export") ? "Play original clip cuts the recording of this object (needs the case reference)." : "";
}

$("#synopsis-clip-button").addEventListener("click", async () => {
  const { click } = state.synopsisHit;
  const status = $("#synopsis-hit-status");
  const c = caseRef();
  if (!c) { status.textContent = "A clip export needs the case reference (top right)."; status.classList.add("error"); $("#case").focus(); return; }
  status.classList.remove("error");
  status.textContent = "Cutting the original clip from the recordings…";
  const button = $("#synopsis-clip-button");
  button.disabled = true;
  try {
    const body = click.number !== undefined ? { t: click.t, number: click.number, case: c } : { t: click.t, x: click.x, y: click.y, case: c };
    const out = await api(`${state.synopsis.url}/clip`, { method: "POST", json: body });
    const clip = $("#synopsis-clip");
    clip.hidden = false;
    clip.src = out.export.url;
    clip.addEventListener("loadedmetadata", () => { clip.currentTime = out.offset_s; clip.play().catch(() => {}); }, { once: true });
    status.textContent = `Export ${out.export.export_id}: ${fmtTime(out.export.start)} – ${fmtTime(out.export.end).slice(11)}, the clicked moment is ${out.offset_s.toFixed(1)} s in; SHA-256 ${out.export.sha256.slice(0, 16)}…`;
  } catch (err) {
    status.textContent = err.message;
    status.classList.add("error");
  } finally {
    button.disabled = false;
  }
});

$("#synopsis-sighting").addEventListener("click", () => openDetail("track", state.synopsisHit.hit.object.sighting_id));

// -- live alerts: web/console.js --------------------------------------------------------------------

// -- audit ---------------------------------------------------------------------------------------------
$("#audit-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const section = $("#tab-audit");
  const v = formValues(ev.target);
  runSearch(section, async () => {
    const data = await api(`/api/audit?${query(v)}`);
    setStatus(section, `${data.count} entr${data.count === 1 ? "y" : "ies"}, newest last.`);
    $("#audit-rows").replaceChildren(...data.entries.map((e) => el("tr", { class: e.outcome === "ok" ? "" : "refused" },
      el("td", {}, (e.ts || "").slice(0, 19).replace("T", " ")), el("td", {}, e.user || "–"), el("td", {}, e.action),
      el("td", {}, `${e.outcome} ${e.status}`), el("td", {}, e.case || ""), el("td", {}, e.result_count ?? ""),
      el("td", {}, e.client || ""), el("td", { class: "details" }, auditDetails(e)))));
  });
});

function auditDetails(e) {
  const params = Object.entries(e.params || {}).filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && !v.length))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
  if (e.exported_keys && e.exported_keys.length) params.push(`exported=${e.exported_keys.join(",")}`);
  return [e.reason, params.join(" ")].filter(Boolean).join(" — ");
}

$("#audit-verify").addEventListener("click", async () => {
  const section = $("#tab-audit");
  try {
    const r = await api("/api/audit/verify");
    setStatus(section, r.ok ? `Verified: ${r.entries} entries in ${Object.keys(r.chains).length} chain(s), no problem found.` : `FAILED: ${r.problems[0]}`, !r.ok);
  } catch (err) { setStatus(section, err.message, true); }
});

// After every deferred script (live.js, …) has registered its hooks.
document.addEventListener("DOMContentLoaded", init);
