// Administration (admins): cameras, zones and lines drawn on the camera's current picture, rules, plate hotlists, users.
// Every save goes through the API, which validates, versions and audits it; workers pick changes up live.
"use strict";

const adm = { rules: null, version: 0, camera: null, points: [], mode: "zone", users: [] };

// -- cameras -------------------------------------------------------------------------------------------
async function loadAdminCameras() {
  const data = await api("/api/admin/cameras");
  $("#admin-camera-rows").replaceChildren(...data.cameras.map((c) => el("tr", { "data-id": c.id },
    el("td", {}, c.id), el("td", {}, c.name), el("td", {}, c.kind), el("td", { class: "url" }, c.url || c.gb_device_id || ""),
    el("td", {}, c.admin_unit || "–"), el("td", {}, c.point_class || "–"),
    el("td", {}, c.latitude !== null && c.longitude !== null ? `${c.latitude}, ${c.longitude}` : "–"),
    el("td", {}, c.enabled ? "yes" : "no"),
    el("td", {}, c.source === "registry" ? el("span", {},
      el("button", { type: "button", class: "link", onclick: () => editCamera(c) }, "edit"), " ",
      el("button", { type: "button", class: "link", onclick: () => removeCamera(c.id) }, "remove")) : "config file"))));
  const select = $("#zone-camera");
  const keep = select.value;
  select.replaceChildren(...data.cameras.map((c) => el("option", { value: c.id }, `${c.name || c.id} (${c.id})`)));
  if (keep) select.value = keep;
}

function editCamera(c) {
  const f = $("#camera-form");
  for (const k of ["id", "name", "kind", "url", "username", "transport", "admin_unit", "point_class", "latitude", "longitude", "gb_device_id"]) {
    if (f[k]) f[k].value = c[k] === null || c[k] === undefined ? "" : c[k];
  }
  f.enabled.checked = c.enabled;
  f.password.value = "";
  f.password.placeholder = c.has_password ? "(unchanged)" : "";
  f.id.focus();
}

async function removeCamera(id) {
  if (!confirm(`Remove camera ${id} from the registry? Ingest stops it within seconds.`)) return;
  try { await api(`/api/admin/cameras/${encodeURIComponent(id)}`, { method: "DELETE" }); setStatus($("#tab-admin"), `Camera ${id} removed.`); loadAdminCameras(); }
  catch (err) { setStatus($("#tab-admin"), err.message, true); }
}

$("#camera-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const v = Object.fromEntries(new FormData(f).entries());
  const body = { name: v.name, kind: v.kind, url: v.url, transport: v.transport || "auto", admin_unit: v.admin_unit,
    point_class: v.point_class || null, latitude: v.latitude === "" ? null : Number(v.latitude),
    longitude: v.longitude === "" ? null : Number(v.longitude), enabled: f.enabled.checked,
    username: v.username || null, gb_device_id: v.gb_device_id || null, device_type: v.kind === "file" ? "file" : "camera",
    loop: v.kind === "file" };
  if (v.password) body.password = v.password;
  const status = $("#camera-form-status");
  try {
    await api(`/api/admin/cameras/${encodeURIComponent(v.id)}`, { method: "PUT", json: body });
    status.textContent = `Camera ${v.id} saved. Ingest picks it up within a few seconds.`;
    status.classList.remove("error");
    f.reset();
    loadAdminCameras();
    loadCameras().catch(() => {});
  } catch (err) { status.textContent = err.message; status.classList.add("error"); }
});

// -- zones and lines on the current picture --------------------------------------------------------------
async function loadRules() {
  const data = await api("/api/admin/rules");
  adm.rules = data.rules;
  adm.version = data.version;
  $("#rules-version").textContent = data.version ? `version ${data.version}, saved by ${data.updated_by} ${fmtTime(data.updated_at)}` : "from the configuration file (not edited yet)";
  $("#rules-json").value = JSON.stringify(data.rules.cameras, null, 1);
  drawZones();
}

function entryFor(cameraId) {
  let entry = adm.rules.cameras.find((c) => c.camera_id === cameraId);
  if (!entry) { entry = { camera_id: cameraId, zones: [], lines: [], rules: [] }; adm.rules.cameras.push(entry); }
  return entry;
}

async function loadSnapshot() {
  const cam = $("#zone-camera").value;
  adm.camera = cam;
  adm.points = [];
  const img = $("#zone-snapshot");
  const status = $("#zone-status");
  status.textContent = "Loading the current picture…";
  img.onload = () => { $(".zone-stage").style.aspectRatio = `${img.naturalWidth} / ${img.naturalHeight}`; status.textContent = "Click to place points; a zone closes with Finish (or a double-click), a line takes two clicks."; drawZones(); };
  img.onerror = () => { status.textContent = "No live picture from this camera now: zones can still be drawn on an empty frame."; drawZones(); };
  img.src = `/api/live/${encodeURIComponent(cam)}/snapshot.jpg?t=${Date.now()}`;
}

function drawZones() {
  const svgEl = $("#zone-svg");
  svgEl.replaceChildren();
  if (!adm.rules || !adm.camera) return;
  const entry = adm.rules.cameras.find((c) => c.camera_id === adm.camera) || { zones: [], lines: [] };
  const P = (p) => `${p[0] * 1000},${p[1] * 1000}`;
  for (const z of entry.zones) {
    const poly = svg("polygon", { points: z.polygon.map(P).join(" "), class: "zone-shape" });
    const t = svg("title"); t.textContent = z.name || z.id; poly.append(t);
    svgEl.append(poly);
  }
  for (const l of entry.lines) svgEl.append(svg("line", { x1: l.a[0] * 1000, y1: l.a[1] * 1000, x2: l.b[0] * 1000, y2: l.b[1] * 1000, class: "line-shape" }));
  if (adm.points.length) {
    svgEl.append(svg("polyline", { points: adm.points.map(P).join(" "), class: "drawing" }));
    for (const p of adm.points) svgEl.append(svg("circle", { cx: p[0] * 1000, cy: p[1] * 1000, r: 8, class: "vertex" }));
  }
  $("#zone-list").replaceChildren(
    ...entry.zones.map((z) => el("li", {}, `zone ${z.name || z.id} `, el("button", { type: "button", class: "link", onclick: () => removeShape("zone", z.id) }, "remove"))),
    ...entry.lines.map((l) => el("li", {}, `line ${l.name || l.id} `, el("button", { type: "button", class: "link", onclick: () => removeShape("line", l.id) }, "remove"))));
}

function removeShape(kind, id) {
  const entry = entryFor(adm.camera);
  if (kind === "zone") entry.zones = entry.zones.filter((z) => z.id !== id);
  else entry.lines = entry.lines.filter((l) => l.id !== id);
  entry.rules = entry.rules.filter((r) => r.zone !== id && r.line !== id);
  saveRules(`Removed ${kind} ${id}.`);
}

function slug(text) { return (text || "").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "shape"; }

function finishShape() {
  const name = $("#zone-name").value.trim() || (adm.mode === "zone" ? "Zone" : "Line");
  const entry = entryFor(adm.camera);
  const id = `${slug(name)}-${Date.now().toString(36).slice(-4)}`;
  const classes = $("#zone-classes").value ? [$("#zone-classes").value] : [];
  const severity = $("#zone-severity").value;
  if (adm.mode === "zone") {
    if (adm.points.length < 3) { $("#zone-status").textContent = "A zone needs at least three points."; return; }
    entry.zones.push({ id, name, polygon: adm.points.map((p) => [round4(p[0]), round4(p[1])]) });
    entry.rules.push({ id: `${id}-intrusion`, name: `${name}: intrusion`, kind: "zone_intrusion", zone: id, classes, severity, cooldown_s: 30 });
  } else {
    if (adm.points.length < 2) { $("#zone-status").textContent = "A line needs two points."; return; }
    entry.lines.push({ id, name, a: adm.points[0].map(round4), b: adm.points[1].map(round4) });
    entry.rules.push({ id: `${id}-crossing`, name: `${name}: crossing`, kind: "line_crossing", line: id, direction: "both", classes, severity, cooldown_s: 5 });
  }
  adm.points = [];
  saveRules(`${adm.mode === "zone" ? "Zone" : "Line"} "${name}" saved with its rule; the rules worker applies it within seconds.`);
}

function round4(x) { return Math.round(Math.min(1, Math.max(0, x)) * 10000) / 10000; }

async function saveRules(message) {
  const status = $("#zone-status");
  try {
    const out = await api("/api/admin/rules", { method: "PUT", json: { expect_version: adm.version, rules: adm.rules } });
    status.textContent = `${message} (version ${out.version})`;
    status.classList.remove("error");
  } catch (err) {
    status.textContent = err.message;
    status.classList.add("error");
  }
  await loadRules();
}

$("#zone-svg").addEventListener("click", (ev) => {
  if (!adm.camera) return;
  const r = ev.currentTarget.getBoundingClientRect();
  adm.points.push([(ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height]);
  drawZones();
  if (adm.mode === "line" && adm.points.length === 2) finishShape();
});
$("#zone-svg").addEventListener("dblclick", (ev) => { ev.preventDefault(); if (adm.mode === "zone") { adm.points.pop(); finishShape(); } });
$("#zone-finish").addEventListener("click", finishShape);
$("#zone-clear").addEventListener("click", () => { adm.points = []; drawZones(); });
$("#zone-camera").addEventListener("change", loadSnapshot);
$("#zone-mode").addEventListener("change", (ev) => { adm.mode = ev.target.value; adm.points = []; drawZones(); });
$("#rules-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  try { adm.rules.cameras = JSON.parse($("#rules-json").value); } catch (err) { $("#rules-status").textContent = `Not JSON: ${err.message}`; return; }
  saveRules("Rules saved.").then(() => { $("#rules-status").textContent = $("#zone-status").textContent; });
});

// -- plate hotlists --------------------------------------------------------------------------------------
// Every change is saved at once (PUT with the version it started from; 409 when someone else saved since) and
// the plate worker picks it up within hotlists.refresh_s. Lists from configuration files are shown read-only.
const hot = { list: null, refresh: 0 };

async function loadHotlists() {
  const data = await api("/api/admin/hotlists");
  hot.refresh = data.refresh_s;
  $("#hotlist-note").textContent = `the plate worker applies changes within ${data.refresh_s} s` + (data.problems.length ? ` · unreadable: ${data.problems.join("; ")}` : "");
  $("#hotlist-rows").replaceChildren(...data.lists.map((h) => el("tr", { "data-name": h.name },
    el("td", {}, h.name), el("td", {}, h.source === "store" ? "edited here" : "config file"), el("td", {}, String(h.plates)),
    el("td", {}, h.severity), el("td", {}, h.owner || "–"), el("td", {}, h.reason || "–"),
    el("td", {}, h.source === "store" ? `${h.version}${h.updated_by ? ` · ${h.updated_by}` : ""}` : "–"),
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => openHotlist(h.name) }, h.source === "store" ? "edit" : "view")))));
}

async function openHotlist(name) {
  try { showHotlist(await api(`/api/admin/hotlists/${encodeURIComponent(name)}`)); hotSay(`List ${name}: ${hotVersion()}`); }
  catch (err) { hotSay(err.message, true); }
}

function hotVersion() {
  const h = hot.list;
  if (!h) return "";
  return h.source === "file" ? "from a configuration file (read-only here)" : `version ${h.version}${h.updated_by ? `, saved by ${h.updated_by} ${fmtTime(h.updated_at)}` : ""}`;
}

function hotSay(text, isError = false) {
  const status = $("#hotlist-status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function showHotlist(h) {
  hot.list = h;
  const f = $("#hotlist-form");
  f.name.value = h ? h.name : "";
  f.reason.value = h ? h.reason : "";
  f.owner.value = h ? h.owner : "";
  f.severity.value = h ? h.severity : "high";
  const editable = !h || h.source === "store";
  f.name.readOnly = Boolean(h);
  $("#hotlist-delete").hidden = !h || !editable;
  for (const x of $$("#hotlist-entry-form input, #hotlist-entry-form button, #hotlist-form button[type=submit]")) x.disabled = !editable;
  const entries = h ? h.entries : [];
  $("#hotlist-entry-rows").replaceChildren(...entries.map((e) => el("tr", { "data-plate": e.plate, class: e.expired ? "muted" : "" },
    el("td", {}, e.plate), el("td", {}, e.note || "–"), el("td", {}, e.expires_at ? `${fmtTime(e.expires_at)}${e.expired ? " (expired)" : ""}` : "never"),
    el("td", {}, editable ? el("button", { type: "button", class: "link", onclick: () => removePlate(e.plate) }, "remove") : ""))));
}

function hotBody(entries) {
  const f = $("#hotlist-form");
  return { expect_version: hot.list ? hot.list.version : 0, reason: f.reason.value, owner: f.owner.value, severity: f.severity.value,
    entries: entries.map((e) => ({ plate: e.plate, note: e.note || "", expires_at: e.expires_at || null })) };
}

async function saveHotlist(entries, message) {
  const name = $("#hotlist-form").name.value.trim();
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) { hotSay("A list name is 1-64 letters, digits and _.:-", true); return false; }
  try {
    const saved = await api(`/api/admin/hotlists/${encodeURIComponent(name)}`, { method: "PUT", json: hotBody(entries) });
    showHotlist(saved);
    hotSay(`${message} Saved as version ${saved.version} (${saved.plates} plates); the plate worker applies it within ${hot.refresh} s.`);
    loadHotlists().catch(() => {});
    return true;
  } catch (err) {
    hotSay(err.status === 409 ? `${err.message} — the list was reloaded; make your change again.` : err.message, true);
    if (err.status === 409) openHotlist(name).then(() => hotSay(`${err.message} — reloaded; make your change again.`, true));
    return false;
  }
}

function removePlate(plate) {
  saveHotlist(hot.list.entries.filter((e) => e.plate !== plate), `Removed ${plate}.`);
}

// A small CSV reader: header row with a 'plate' column (and optionally note, expires); quoted fields allowed.
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") { row.push(field); field = ""; }
    else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field); field = "";
      if (row.some((x) => x.trim())) rows.push(row);
      row = [];
    } else field += ch;
  }
  row.push(field);
  if (row.some((x) => x.trim())) rows.push(row);
  if (!rows.length) throw new Error("the file is empty");
  const head = rows[0].map((h) => h.replace(/^\uFEFF/, "").trim().toLowerCase());
  const col = (name) => head.indexOf(name);
  if (col("plate") < 0) throw new Error("the CSV needs a header row with a 'plate' column (optional: note, expires)");
  return rows.slice(1).filter((r) => (r[col("plate")] || "").trim()).map((r) => {
    const expires = col("expires") >= 0 ? (r[col("expires")] || "").trim() : "";
    const when = expires ? new Date(expires) : null;
    if (when && Number.isNaN(when.getTime())) throw new Error(`expires ${JSON.stringify(expires)} is not a date`);
    return { plate: r[col("plate")].trim(), note: col("note") >= 0 ? (r[col("note")] || "").trim() : "", expires_at: when ? when.toISOString() : null };
  });
}

$("#hotlist-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  saveHotlist(hot.list ? hot.list.entries : [], hot.list ? "List details changed." : "List created.");
});
$("#hotlist-new").addEventListener("click", () => { showHotlist(null); hotSay("A new list: name it, then Save list or add plates."); $("#hotlist-name").focus(); });
$("#hotlist-delete").addEventListener("click", async () => {
  const h = hot.list;
  if (!h || !confirm(`Delete hotlist ${h.name} (${h.entries.length} plates)? Its plates stop raising alerts.`)) return;
  try {
    await api(`/api/admin/hotlists/${encodeURIComponent(h.name)}?${query({ expect_version: h.version })}`, { method: "DELETE" });
    showHotlist(null); hotSay(`Hotlist ${h.name} deleted.`); loadHotlists();
  } catch (err) { hotSay(err.message, true); }
});
$("#hotlist-entry-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const entry = { plate: f.plate.value.trim(), note: f.note.value.trim(), expires_at: toIso(f.expires.value) };
  const entries = hot.list ? [...hot.list.entries] : [];
  if (await saveHotlist([...entries, entry], `Added ${entry.plate}.`)) { f.plate.value = ""; f.plate.focus(); }
});
$("#hotlist-csv").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  ev.target.value = "";
  if (!file) return;
  if (file.size > 900 * 1024) { hotSay("The file is larger than the API takes in one save (about 900 KB); split it or use 'tubeline hotlists import'.", true); return; }
  let rows;
  try { rows = parseCsv(await file.text()); } catch (err) { hotSay(`${file.name}: ${err.message}`, true); return; }
  const entries = hot.list ? [...hot.list.entries] : [];
  const known = new Set(entries.map((e) => e.plate));
  const fresh = rows.filter((r) => !known.has(r.plate.toUpperCase()));
  saveHotlist([...entries, ...fresh], `Imported ${fresh.length} plate(s) from ${file.name} (${rows.length - fresh.length} already listed).`);
});

// -- users ---------------------------------------------------------------------------------------------
async function loadUsers() {
  const data = await api("/api/users");
  $("#admin-user-rows").replaceChildren(...data.users.map((u) => el("tr", {},
    el("td", {}, u.name), el("td", {}, u.role), el("td", {}, scopeText(u.scope)), el("td", {}, u.disabled ? "disabled" : "active"),
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => patchUser(u.name, { disabled: !u.disabled }) }, u.disabled ? "enable" : "disable"), " ",
      el("button", { type: "button", class: "link", onclick: () => removeUser(u.name) }, "remove")))));
}

function scopeText(s) {
  if (s.all_cameras) return "all cameras";
  return [...s.units.map((u) => `unit ${u}`), ...s.cameras].join(", ") || "no cameras";
}

async function patchUser(name, body) {
  try { await api(`/api/admin/users/${encodeURIComponent(name)}`, { method: "PATCH", json: body }); loadUsers(); }
  catch (err) { setStatus($("#tab-admin"), err.message, true); }
}

async function removeUser(name) {
  if (!confirm(`Remove user ${name}?`)) return;
  try { await api(`/api/admin/users/${encodeURIComponent(name)}`, { method: "DELETE" }); loadUsers(); }
  catch (err) { setStatus($("#tab-admin"), err.message, true); }
}

$("#user-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const v = Object.fromEntries(new FormData(ev.target).entries());
  const list = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);
  const scope = v.scope === "all" ? { all_cameras: true } : { units: list(v.units || ""), cameras: list(v.cameras || "") };
  const status = $("#user-form-status");
  try {
    await api("/api/admin/users", { method: "POST", json: { name: v.name, role: v.role, password: v.password, scope } });
    status.textContent = `User ${v.name} added.`; status.classList.remove("error"); ev.target.reset(); loadUsers();
  } catch (err) { status.textContent = err.message; status.classList.add("error"); }
});

tabHooks.admin = async (shown) => {
  if (!shown) return;
  try {
    await Promise.all([loadAdminCameras(), loadRules(), loadUsers(), loadHotlists()]);
    if (!adm.camera && $("#zone-camera").value) loadSnapshot();
  } catch (err) { setStatus($("#tab-admin"), err.message, true); }
};
