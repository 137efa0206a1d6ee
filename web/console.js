// Alert console: live alert cards with the evidence snapshot and a short clip around the moment, filters,
// acknowledge / assign / note (shared with every operator live through the alert stream), unseen counts that
// count what this user has not looked at, and an optional sound for high-severity alerts.
"use strict";

const desk = { alerts: new Map(), records: new Map(), seen: new Set(), open: null, visibleSince: new Map(), audio: null };
const RANK = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };

function seenKey() { return `tubeline-seen-${state.user ? state.user.name : ""}`; }

function loadSeen() {
  try { desk.seen = new Set(JSON.parse(localStorage.getItem(seenKey()) || "[]")); } catch (_) { desk.seen = new Set(); }
}

function markSeen(id) {
  if (desk.seen.has(id)) return;
  desk.seen.add(id);
  const ids = [...desk.seen].slice(-2000);
  localStorage.setItem(seenKey(), JSON.stringify(ids));
  const card = document.querySelector(`#alert-list li[data-id="${CSS.escape(id)}"]`);
  if (card) card.classList.remove("unseen");
  updateBadge();
}

// Unseen = alerts in the list that this user has neither looked at nor that anyone has acknowledged.
function unseenCount() {
  let n = 0;
  for (const id of desk.alerts.keys()) {
    const rec = desk.records.get(id);
    if (!desk.seen.has(id) && !(rec && rec.state === "acknowledged")) n += 1;
  }
  return n;
}

function updateBadge() {
  state.unseen = unseenCount();
  const badge = $("#alert-badge");
  badge.textContent = String(state.unseen);
  badge.hidden = state.unseen === 0;
}

function beep() {
  if (!$("#alert-sound").checked) return;
  try {
    desk.audio = desk.audio || new AudioContext();
    const o = desk.audio.createOscillator(), g = desk.audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.08;
    o.connect(g).connect(desk.audio.destination);
    o.start(); o.stop(desk.audio.currentTime + 0.25);
  } catch (_) { /* no audio device */ }
}

function cameraName(id) {
  const c = state.cameras.find((x) => x.camera_id === id);
  return c ? c.name || id : id;
}

function deskLine(rec) {
  if (!rec) return "";
  const parts = [];
  if (rec.state === "acknowledged") parts.push(`acknowledged by ${rec.acknowledged_by} at ${fmtTime(rec.acknowledged_at).slice(11)}`);
  if (rec.assigned_to) parts.push(`assigned to ${rec.assigned_to}`);
  if (rec.notes.length) parts.push(`${rec.notes.length} note${rec.notes.length > 1 ? "s" : ""}`);
  return parts.join(" · ");
}

function alertCard(a) {
  const rec = desk.records.get(a.alert_id);
  const img = a.evidence_urls.length ? el("img", { src: a.evidence_urls[0], alt: "evidence", loading: "lazy" }) : el("div", { class: "noimg" }, "no snapshot");
  const card = el("li", { class: `alert sev-${a.severity}${desk.seen.has(a.alert_id) || (rec && rec.state === "acknowledged") ? "" : " unseen"}`,
    "data-id": a.alert_id, "data-state": rec ? rec.state : "new", tabindex: 0 },
  img,
  el("div", { class: "alert-body" },
    el("strong", {}, `${a.severity.toUpperCase()} · ${a.alert_type.replaceAll("_", " ")}`),
    el("div", {}, a.message),
    el("div", { class: "muted" }, `${cameraName(a.camera_id)} · ${fmtTime(a.occurred_at)} ${zoneShort()}`),
    el("div", { class: "desk-line" }, deskLine(rec))),
  el("button", { type: "button", class: "link", onclick: () => openAlert(a.alert_id) }, "Open"));
  card.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openAlert(a.alert_id); });
  return card;
}

function zoneShort() {
  const off = -new Date().getTimezoneOffset();
  return `UTC${off >= 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

function passes(a) {
  const f = new FormData($("#alert-filters"));
  if (f.get("type") && a.alert_type !== f.get("type")) return false;
  if (f.get("camera") && a.camera_id !== f.get("camera")) return false;
  if (f.get("severity") && RANK[a.severity] < RANK[f.get("severity")]) return false;
  if (f.get("since") && Date.now() - new Date(a.occurred_at).getTime() > Number(f.get("since")) * 1000) return false;
  const rec = desk.records.get(a.alert_id);
  if (f.get("state") === "new" && rec && rec.state === "acknowledged") return false;
  return true;
}

function renderAlerts() {
  const list = $("#alert-list");
  const all = [...desk.alerts.values()].sort((x, y) => new Date(y.occurred_at) - new Date(x.occurred_at));
  const shown = all.filter(passes).slice(0, 300);
  list.replaceChildren(...shown.map(alertCard));
  setStatus($("#tab-alerts"), `${shown.length} of ${all.length} alert(s) shown · ${unseenCount()} unseen`);
  if (desk.open && desk.alerts.has(desk.open)) renderDetail(desk.open);
  observeCards();
  updateBadge();
}

// A card counts as seen after it has been on screen, on the visible alerts tab, for a second.
const seenObserver = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const id = e.target.dataset.id;
    if (e.isIntersecting && !$("#tab-alerts").hidden && document.visibilityState === "visible") {
      desk.visibleSince.set(id, performance.now());
      setTimeout(() => { if (desk.visibleSince.has(id) && performance.now() - desk.visibleSince.get(id) >= 990) markSeen(id); }, 1000);
    } else desk.visibleSince.delete(id);
  }
}, { threshold: 0.6 });

function observeCards() {
  seenObserver.disconnect();
  desk.visibleSince.clear();
  for (const li of $$("#alert-list li")) seenObserver.observe(li);
}

async function lookupDesk(alerts) {
  const refs = alerts.map((a) => ({ camera_id: a.camera_id, alert_id: a.alert_id }));
  for (let i = 0; i < refs.length; i += 500) {
    const data = await api("/api/alerts/desk/lookup", { method: "POST", json: { alerts: refs.slice(i, i + 500) } }).catch(() => null);
    if (data) for (const r of data.records) desk.records.set(r.alert_id, r);
  }
}

function startAlerts() {
  if (state.events) state.events.close();
  loadSeen();
  desk.alerts.clear();
  const stateLabel = $("#alert-state");
  const es = new EventSource("/api/alerts/stream");
  state.events = es;
  let replaying = true, timer = null;
  const batch = [];
  es.onopen = () => { stateLabel.textContent = "· connected"; };
  es.onerror = () => { stateLabel.textContent = "· reconnecting…"; };
  // The server closes the stream when the user's token, session, role or camera scope changed: start over
  // from the session, so the tabs, the scope and the alert list are what the user may now see.
  es.addEventListener("closed", async () => {
    es.close();
    if (state.events === es) state.events = null;
    stateLabel.textContent = "· access changed";
    try {
      await startSession(await api("/api/session"));
    } catch (err) {
      showLogin(err.status === 401 ? "Your access changed; log in again." : err.message);
    }
  });
  es.addEventListener("alert", (ev) => {
    const a = JSON.parse(ev.data);
    const fresh = !desk.alerts.has(a.alert_id);
    desk.alerts.set(a.alert_id, a);
    batch.push(a);
    if (fresh && !replaying && RANK[a.severity] >= RANK.high) beep();
    clearTimeout(timer);
    timer = setTimeout(async () => { replaying = false; await lookupDesk(batch.splice(0)); renderAlerts(); }, 150);
  });
  es.addEventListener("update", (ev) => {
    const rec = JSON.parse(ev.data);
    desk.records.set(rec.alert_id, rec);
    renderAlerts();
  });
}

// -- one alert: snapshot, a short clip around the moment, and the desk actions -----------------------
function openAlert(id) {
  desk.open = id;
  markSeen(id);
  renderDetail(id);
  const a = desk.alerts.get(id);
  playAlertClip(a);
  $("#alert-detail").scrollIntoView({ block: "nearest" });
}

function renderDetail(id) {
  const a = desk.alerts.get(id), rec = desk.records.get(id);
  const box = $("#alert-detail");
  box.hidden = false;
  box.dataset.id = id;
  $("#alert-detail-title").textContent = `${a.severity.toUpperCase()} · ${a.alert_type.replaceAll("_", " ")} on ${cameraName(a.camera_id)}`;
  const snap = $("#alert-snapshot");
  snap.hidden = !a.evidence_urls.length;
  if (a.evidence_urls.length && snap.getAttribute("src") !== a.evidence_urls[0]) snap.src = a.evidence_urls[0];
  const rows = [["Time", `${fmtTime(a.occurred_at)} ${zoneShort()}`], ["Camera", `${cameraName(a.camera_id)} (${a.camera_id})`],
    ["Rule", a.rule_id], ["Message", a.message], ["Track", a.track_id || "–"], ["State", rec ? rec.state : "new"]];
  if (rec && rec.acknowledged_by) rows.push(["Acknowledged", `${rec.acknowledged_by} at ${fmtTime(rec.acknowledged_at)}`]);
  if (rec && rec.assigned_to) rows.push(["Assigned to", rec.assigned_to]);
  $("#alert-fields").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("#alert-notes").replaceChildren(...(rec ? rec.notes : []).map((n) => el("li", {}, el("strong", {}, n.by), ` ${fmtTime(n.at).slice(11)}: ${n.text}`)));
  $("#alert-ack").disabled = Boolean(rec && rec.state === "acknowledged");
}

async function playAlertClip(a) {
  const video = $("#alert-clip"), status = $("#alert-clip-status");
  video.hidden = true;
  video.removeAttribute("src");
  if (!state.user.permissions.includes("recordings")) { status.textContent = ""; return; }
  const t = new Date(a.occurred_at).getTime();
  try {
    const data = await api(`/api/recordings/${encodeURIComponent(a.camera_id)}/timeline?${query({ start: new Date(t - 20000).toISOString(), end: new Date(t + 20000).toISOString() })}`);
    const from = t - 5000;
    const seg = data.segments.find((s) => new Date(s.start).getTime() <= from && from < new Date(s.end).getTime())
      || data.segments.find((s) => new Date(s.start).getTime() <= t && t < new Date(s.end).getTime());
    if (!seg) { status.textContent = "No recording around this moment (yet: a segment is stored when it closes)."; return; }
    const offset = Math.max(0, (from - new Date(seg.start).getTime()) / 1000);
    video.src = seg.url;
    video.hidden = false;
    video.addEventListener("loadedmetadata", () => { video.currentTime = Math.min(offset, video.duration - 0.1); video.play().catch(() => {}); }, { once: true });
    status.textContent = `Recording from 5 s before the alert (${seg.codec === "h264" ? "original stream" : "transcoded for the browser"}).`;
  } catch (err) { status.textContent = err.message; }
}

async function deskAct(action, value = "") {
  const a = desk.alerts.get(desk.open);
  const status = $("#alert-act-status");
  try {
    const rec = await api(`/api/alerts/${encodeURIComponent(a.alert_id)}/desk`, { method: "POST",
      json: { camera_id: a.camera_id, occurred_at: a.occurred_at, action, value } });
    desk.records.set(rec.alert_id, rec);
    status.textContent = action === "ack" ? "Acknowledged." : action === "assign" ? (rec.assigned_to ? `Assigned to ${rec.assigned_to}.` : "Unassigned.") : "Note added.";
    status.classList.remove("error");
    renderAlerts();
  } catch (err) { status.textContent = err.message; status.classList.add("error"); }
}

$("#alert-ack").addEventListener("click", () => deskAct("ack", $("#alert-note").value.trim()).then(() => { $("#alert-note").value = ""; }));
$("#alert-assign-form").addEventListener("submit", (ev) => { ev.preventDefault(); deskAct("assign", $("#alert-assignee").value.trim()); });
$("#alert-assign-me").addEventListener("click", () => deskAct("assign", state.user.name));
$("#alert-note-form").addEventListener("submit", (ev) => { ev.preventDefault(); const v = $("#alert-note").value.trim(); if (v) deskAct("note", v).then(() => { $("#alert-note").value = ""; }); });
$("#alert-open-recordings").addEventListener("click", () => { const a = desk.alerts.get(desk.open); openTimelineAt(a.camera_id, a.occurred_at); });
$("#alert-filters").addEventListener("change", renderAlerts);
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible" && !$("#tab-alerts").hidden) observeCards(); });
tabHooks.alerts = (shown) => {
  if (shown) { observeCards(); $("#alert-open-recordings").hidden = !state.user.permissions.includes("recordings"); }
  else $("#alert-clip").pause();
};
