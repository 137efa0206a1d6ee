// Recordings timeline: a camera's day (in the browser's time zone) with recorded spans, gaps and events;
// click or drag on it to play from that moment, speed control, and — for roles that may export — a range export.
"use strict";

const tl = { data: null, seg: null, dayStart: null, dayEnd: null, pendingSeek: null, dragging: false };

function zoneLabel() {
  const off = -new Date().getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  return `UTC${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}${tz ? ` (${tz})` : ""}`;
}

function timelineDefaults() {
  const form = $("#timeline-form");
  if (!form.day.value) form.day.value = localValue(new Date()).slice(0, 10);
  $("#timeline-zone").textContent = `times in ${zoneLabel()}`;
  const select = $("#timeline-camera");
  const keep = select.value;
  select.replaceChildren(...state.cameras.map((c) => el("option", { value: c.camera_id }, `${c.name || c.camera_id} (${c.camera_id})`)));
  if (keep) select.value = keep;
}

async function loadTimeline(dayOverride) {
  const section = $("#tab-timeline");
  const form = $("#timeline-form");
  if (dayOverride) form.day.value = dayOverride;
  const [y, m, d] = form.day.value.split("-").map(Number);
  tl.dayStart = new Date(y, m - 1, d);
  tl.dayEnd = new Date(y, m - 1, d + 1);
  try {
    tl.data = await api(`/api/recordings/${encodeURIComponent(form.camera.value)}/timeline?${query({ start: tl.dayStart.toISOString(), end: tl.dayEnd.toISOString() })}`);
  } catch (err) { setStatus(section, err.message, true); return; }
  const t = tl.data;
  const recorded = t.spans.reduce((s, x) => s + (new Date(x.end) - new Date(x.start)), 0) / 1000;
  setStatus(section, `${t.segments.length} segment(s), ${fmtDuration(recorded)} recorded, ${t.gaps.length} gap(s), ${t.events.length} event(s). Click the bar to play from that moment.`);
  drawTimeline();
  $("#timeline-export").hidden = !t.can_export;
}

function fmtDuration(s) {
  if (s < 60) return `${s.toFixed(0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

// The bar shows the day, or — when everything recorded lies within a shorter stretch — zooms to it.
function barRange() {
  const t = tl.data;
  if (!t.spans.length) return [tl.dayStart.getTime(), tl.dayEnd.getTime()];
  const a = new Date(t.spans[0].start).getTime(), b = new Date(t.spans[t.spans.length - 1].end).getTime();
  const zoom = $("#timeline-zoom").checked;
  if (!zoom) return [tl.dayStart.getTime(), tl.dayEnd.getTime()];
  const pad_ = Math.max((b - a) * 0.05, 5000);
  return [Math.max(tl.dayStart.getTime(), a - pad_), Math.min(tl.dayEnd.getTime(), b + pad_)];
}

function drawTimeline() {
  const bar = $("#timeline-bar");
  const W = 1000, H = 70;
  bar.replaceChildren();
  const [t0, t1] = barRange();
  const X = (t) => ((new Date(t).getTime() - t0) / (t1 - t0)) * W;
  bar.append(svg("rect", { x: 0, y: 20, width: W, height: 30, class: "tl-empty" }));
  for (const s of tl.data.spans) bar.append(svg("rect", { x: X(s.start), y: 20, width: Math.max(1, X(s.end) - X(s.start)), height: 30, class: "tl-span" }));
  for (const g of tl.data.gaps) bar.append(svg("rect", { x: X(g.start), y: 20, width: Math.max(1, X(g.end) - X(g.start)), height: 30, class: "tl-gap" }));
  for (const e of tl.data.events) {
    const x = X(e.time);
    const mark = svg("line", { x1: x, x2: x, y1: e.kind === "alert" ? 8 : e.kind === "plate" ? 52 : 56, y2: e.kind === "alert" ? 20 : e.kind === "plate" ? 64 : 68, class: `tl-ev tl-${e.kind}` });
    const title = svg("title");
    title.textContent = `${fmtTime(e.time)} ${e.kind}: ${e.label}`;
    mark.append(title);
    bar.append(mark);
  }
  const steps = 8;
  for (let i = 0; i <= steps; i++) {
    const t = t0 + ((t1 - t0) * i) / steps;
    const label = svg("text", { x: Math.min(W - 30, Math.max(2, (i * W) / steps)), y: 14, class: "tl-tick" });
    label.textContent = fmtTime(new Date(t).toISOString()).slice(11, 19);
    bar.append(label);
  }
  bar.append(svg("line", { id: "timeline-cursor", x1: -10, x2: -10, y1: 16, y2: 54, class: "tl-cursor" }));
  tl.range = [t0, t1];
}

function barTime(ev) {
  const bar = $("#timeline-bar");
  const r = bar.getBoundingClientRect();
  const f = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
  return tl.range[0] + f * (tl.range[1] - tl.range[0]);
}

function segmentAt(ms) {
  const segs = tl.data.segments;
  let s = segs.find((x) => new Date(x.start).getTime() <= ms && ms < new Date(x.end).getTime());
  if (!s) s = segs.find((x) => new Date(x.start).getTime() > ms);  // in a gap: the next recording
  return s || null;
}

async function playAt(ms) {
  const seg = segmentAt(ms);
  const status = $("#timeline-play-status");
  if (!seg) { status.textContent = "Nothing recorded at or after that moment."; return; }
  const video = $("#timeline-video");
  const offset = Math.max(0, (ms - new Date(seg.start).getTime()) / 1000);
  video.hidden = false;
  if (tl.seg !== seg) {
    tl.seg = seg;
    tl.pendingSeek = offset;
    status.textContent = `Loading ${fmtTime(seg.start)} …`;
    video.src = seg.url;
  } else {
    video.currentTime = offset;
  }
  video.playbackRate = Number($("#timeline-rate").value);
  await video.play().catch(() => {});
}

function nowPlaying() {
  const video = $("#timeline-video");
  if (!tl.seg) return null;
  return new Date(tl.seg.start).getTime() + video.currentTime * 1000;
}

function initTimeline() {
  const video = $("#timeline-video");
  video.addEventListener("loadedmetadata", () => {
    if (tl.pendingSeek !== null) { video.currentTime = Math.min(tl.pendingSeek, Math.max(0, video.duration - 0.05)); tl.pendingSeek = null; }
    video.playbackRate = Number($("#timeline-rate").value);
  });
  video.addEventListener("timeupdate", () => {
    const ms = nowPlaying();
    if (ms === null) return;
    const iso = new Date(ms).toISOString();
    $("#timeline-now").textContent = `${fmtTime(iso)}.${String(Math.round(ms) % 1000).padStart(3, "0")}`;
    $("#timeline-now").dataset.ms = String(Math.round(ms));
    $("#timeline-play-status").textContent = `Playing the recording (${tl.seg.codec}${tl.seg.codec === "h264" ? ", original stream" : ", transcoded for the browser"}) at ${video.playbackRate}×.`;
    const cursor = $("#timeline-cursor");
    if (cursor && tl.range) { const x = ((ms - tl.range[0]) / (tl.range[1] - tl.range[0])) * 1000; cursor.setAttribute("x1", x); cursor.setAttribute("x2", x); }
  });
  video.addEventListener("ended", () => {  // on to the next segment
    const segs = tl.data.segments;
    const i = segs.indexOf(tl.seg);
    if (i >= 0 && i + 1 < segs.length) playAt(new Date(segs[i + 1].start).getTime());
  });
  const bar = $("#timeline-bar");
  bar.addEventListener("pointerdown", (ev) => { tl.dragging = true; bar.setPointerCapture(ev.pointerId); playAt(barTime(ev)); });
  bar.addEventListener("pointermove", (ev) => { if (tl.dragging) { const c = $("#timeline-cursor"); const x = ((barTime(ev) - tl.range[0]) / (tl.range[1] - tl.range[0])) * 1000; c.setAttribute("x1", x); c.setAttribute("x2", x); } });
  bar.addEventListener("pointerup", (ev) => { if (tl.dragging) { tl.dragging = false; playAt(barTime(ev)); } });
  $("#timeline-rate").addEventListener("change", (ev) => { video.playbackRate = Number(ev.target.value); });
  $("#timeline-zoom").addEventListener("change", () => { if (tl.data) drawTimeline(); });
  $("#timeline-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadTimeline(); });
  $("#timeline-mark-start").addEventListener("click", () => { const ms = nowPlaying(); if (ms) $("#export-start").value = localValue(new Date(ms)); });
  $("#timeline-mark-end").addEventListener("click", () => { const ms = nowPlaying(); if (ms) $("#export-end").value = localValue(new Date(ms)); });
  $("#timeline-export-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#timeline-export-status");
    const c = caseRef();
    if (!c) { out.textContent = "An export needs the case reference (top right)."; out.classList.add("error"); return; }
    out.classList.remove("error");
    out.textContent = "Cutting the range from the recordings…";
    try {
      const ex = await api(`/api/recordings/${encodeURIComponent(tl.data.camera_id)}/export`, { method: "POST",
        json: { start: toIso($("#export-start").value), end: toIso($("#export-end").value), case: c } });
      out.replaceChildren(`Export ${ex.export_id} for ${ex.case}: ${fmtTime(ex.start)} – ${fmtTime(ex.end).slice(11)}, ${ex.duration_s.toFixed(1)} s, SHA-256 ${ex.sha256.slice(0, 16)}… `,
        el("a", { href: ex.url, download: `${ex.case}-${ex.export_id}.mp4` }, "Download MP4"));
    } catch (err) { out.textContent = err.message; out.classList.add("error"); }
  });
}

// Other sections open the timeline at a moment (an alert's clip, a sighting).
async function openTimelineAt(cameraId, iso) {
  selectTab("timeline");
  const when = new Date(iso);
  $("#timeline-camera").value = cameraId;
  await loadTimeline(localValue(when).slice(0, 10));
  await playAt(when.getTime() - 5000);
}

initTimeline();
tabHooks.timeline = (shown) => {
  if (shown) { timelineDefaults(); if (!tl.data && $("#timeline-camera").value) loadTimeline(); }
  else { const v = $("#timeline-video"); v.pause(); }
};
