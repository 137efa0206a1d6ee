// Live view: a grid of 1/4/9/16 cameras and a single-camera view with overlays.
// Each tile is a WebSocket (/api/live/{camera}/ws): fragmented MP4 (the camera's own stream, remuxed) into
// Media Source Extensions, or JPEG pictures when the codec cannot play in the browser (the server says so).
"use strict";

const live = { layout: 4, players: [], cameras: [], single: null, overlays: false, timer: null };

class LivePlayer {
  constructor(tile, cam, { overlays = false } = {}) {
    this.tile = tile; this.cam = cam; this.overlays = overlays;
    this.mode = "auto"; this.queue = []; this.times = []; this.dets = []; this.geometry = null;
    this.video = $("video", tile); this.img = $("img", tile); this.canvas = $("canvas", tile);
    this.stamp = $(".tile-time", tile); this.label = $(".tile-mode", tile);
    this.closed = false; this.frames = 0;
  }

  start() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/live/${encodeURIComponent(this.cam.camera_id)}/ws?${query({ mode: this.mode, overlays: this.overlays ? 1 : 0 })}`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => (typeof ev.data === "string" ? this.onText(JSON.parse(ev.data)) : this.onBinary(ev.data));
    ws.onclose = (ev) => {
      if (this.closed) return;
      this.setState("offline", ev.reason || "disconnected; retrying");
      setTimeout(() => { if (!this.closed) this.start(); }, 3000);
    };
    this.ws = ws;
    if (this.overlays && !this.geometry) {
      api(`/api/cameras/${encodeURIComponent(this.cam.camera_id)}/geometry`).then((g) => { this.geometry = g; }).catch(() => {});
    }
  }

  stop() {
    this.closed = true;
    if (this.ws) this.ws.close();
    if (this.url) URL.revokeObjectURL(this.url);
    this.video.removeAttribute("src");
  }

  setState(cls, text) {
    const pill = $(".pill", this.tile);
    pill.className = `pill ${cls}`;
    pill.textContent = text;
  }

  onText(msg) {
    if (msg.type === "hello") {
      this.hello = msg;
      if (msg.mode === "fmp4" && !(window.MediaSource && MediaSource.isTypeSupported(msg.mime))) {
        this.mode = "jpeg";  // this browser cannot play the codec: ask the server to transcode
        this.ws.close();
        return;
      }
      this.label.textContent = msg.mode === "fmp4" ? `${msg.codec} ${msg.width}×${msg.height}` : `${msg.codec} → JPEG (transcoded)`;
      this.label.title = msg.note;
      if (msg.mode === "fmp4") this.setupMse(msg.mime); else this.useImage();
    } else if (msg.type === "detections") {
      this.dets.push(msg);
      if (this.dets.length > 60) this.dets.shift();
    } else if (msg.type === "status") {
      this.setState(msg.live ? "online" : "offline", msg.live ? "live" : "no signal");
    }
  }

  useImage() { this.video.hidden = true; this.img.hidden = false; }

  setupMse(mime) {
    this.video.hidden = false; this.img.hidden = true;
    this.queue = []; this.times = [];
    const ms = new MediaSource();
    this.ms = ms;
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = URL.createObjectURL(ms);
    this.video.src = this.url;
    ms.addEventListener("sourceopen", () => {
      this.sb = ms.addSourceBuffer(mime);
      this.sb.mode = "segments";
      this.sb.addEventListener("updateend", () => this.pump());
      this.pump();
    }, { once: true });
    if (this.video.requestVideoFrameCallback) {
      const onFrame = (now, meta) => {
        if (this.video.src !== this.url) return;
        this.frameShown(this.capturedAt(meta.mediaTime));
        this.video.requestVideoFrameCallback(onFrame);
      };
      this.video.requestVideoFrameCallback(onFrame);
    }
  }

  onBinary(buf) {
    const dv = new DataView(buf);
    const kind = dv.getUint8(0), captured = dv.getFloat64(1), media = dv.getFloat64(9);
    const payload = new Uint8Array(buf, 17);
    if (kind === 3) {
      const url = URL.createObjectURL(new Blob([payload], { type: "image/jpeg" }));
      this.img.onload = () => { URL.revokeObjectURL(url); this.frameShown(captured); };
      this.img.src = url;
      return;
    }
    if (kind === 2) { this.times.push([media, captured]); if (this.times.length > 600) this.times.shift(); }
    this.queue.push(payload);
    this.pump();
  }

  pump() {
    const sb = this.sb;
    if (!sb || sb.updating || !this.queue.length || this.ms.readyState !== "open") return;
    const v = this.video;
    if (v.buffered.length && v.currentTime - v.buffered.start(0) > 30) {
      sb.remove(0, v.currentTime - 10);
      return;
    }
    try { sb.appendBuffer(this.queue.shift()); } catch (err) { this.queue = []; }
    if (v.buffered.length) {
      const end = v.buffered.end(v.buffered.length - 1);
      if (end - v.currentTime > 0.5) v.currentTime = Math.max(v.buffered.start(v.buffered.length - 1), end - 0.04);
    }
    if (v.paused) v.play().catch(() => {});
  }

  capturedAt(mediaTime) {
    let best = null;
    for (const [m, c] of this.times) { if (m <= mediaTime + 1e-3) best = [m, c]; else break; }
    return best && !Number.isNaN(best[1]) ? best[1] + (mediaTime - best[0]) * 1000 : null;
  }

  frameShown(capturedMs) {
    if (capturedMs === null || capturedMs === undefined || Number.isNaN(capturedMs)) return;
    this.frames += 1;
    this.tile.dataset.captured = String(Math.round(capturedMs));
    this.tile.dataset.frames = String(this.frames);
    this.stamp.textContent = fmtTime(new Date(capturedMs).toISOString()) + "." + String(Math.round(capturedMs) % 1000).padStart(3, "0");
    this.setState("online", "live");
    if (this.overlays) this.draw(capturedMs);
  }

  draw(capturedMs) {
    const media = this.video.hidden ? this.img : this.video;
    const W = media.clientWidth, H = media.clientHeight;
    const sw = this.video.hidden ? this.img.naturalWidth : this.video.videoWidth;
    const sh = this.video.hidden ? this.img.naturalHeight : this.video.videoHeight;
    if (!W || !H || !sw || !sh) return;
    const c = this.canvas;
    if (c.width !== W || c.height !== H) { c.width = W; c.height = H; }
    const k = Math.min(W / sw, H / sh), ox = (W - sw * k) / 2, oy = (H - sh * k) / 2, fw = sw * k, fh = sh * k;
    const X = (x) => ox + x * fw, Y = (y) => oy + y * fh;
    const g = c.getContext("2d");
    g.clearRect(0, 0, W, H);
    g.lineWidth = 2; g.font = "12px system-ui, sans-serif";
    if (this.geometry) {
      for (const z of this.geometry.zones) {
        g.strokeStyle = "rgba(255,200,0,.9)"; g.fillStyle = "rgba(255,200,0,.12)";
        g.beginPath(); z.polygon.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y)))); g.closePath(); g.fill(); g.stroke();
        g.fillStyle = "rgba(255,200,0,1)"; g.fillText(z.name, X(z.polygon[0][0]) + 4, Y(z.polygon[0][1]) + 14);
      }
      for (const l of this.geometry.lines) {
        g.strokeStyle = "rgba(0,220,255,.95)";
        g.beginPath(); g.moveTo(X(l.a[0]), Y(l.a[1])); g.lineTo(X(l.b[0]), Y(l.b[1])); g.stroke();
        g.fillStyle = "rgba(0,220,255,1)"; g.fillText(l.name, X(l.a[0]) + 4, Y(l.a[1]) - 4);
      }
    }
    let best = null;
    for (const d of this.dets) if (!best || Math.abs(d.captured_ms - capturedMs) < Math.abs(best.captured_ms - capturedMs)) best = d;
    const newest = this.dets.length ? this.dets[this.dets.length - 1].captured_ms : null;
    const lag = $(".tile-lag", this.tile);
    // Boxes belong to one analysed frame: drawn only on pictures near it in time (half the analysis interval,
    // at least 0.5 s), never on pictures far from it.
    const n = this.dets.length;
    const interval = n > 2 ? (this.dets[n - 1].captured_ms - this.dets[0].captured_ms) / (n - 1) : 0;
    const tolerance = Math.max(500, 0.6 * interval);
    if (!best || Math.abs(best.captured_ms - capturedMs) > tolerance) {
      lag.textContent = newest === null ? "no analysis yet" : (newest < capturedMs ? `analysis ${((capturedMs - newest) / 1000).toFixed(1)} s behind` : "");
      return;
    }
    lag.textContent = "";
    this.tile.dataset.boxes = String(best.objects.length);
    for (const o of best.objects) {
      const [x1, y1, x2, y2] = o.box;
      g.strokeStyle = o.class === "person" ? "#3ddc84" : "#ff7043";
      g.strokeRect(X(x1), Y(y1), (x2 - x1) * fw, (y2 - y1) * fh);
      const text = `${o.class}${o.track ? " #" + o.track : ""}`;
      g.fillStyle = "rgba(0,0,0,.6)"; g.fillRect(X(x1), Y(y1) - 15, g.measureText(text).width + 6, 15);
      g.fillStyle = "#fff"; g.fillText(text, X(x1) + 3, Y(y1) - 3);
    }
  }
}

function liveTile(cam) {
  const tile = el("figure", { class: "tile", "data-camera": cam ? cam.camera_id : "", tabindex: cam ? 0 : -1 },
    el("div", { class: "tile-media" },
      el("video", { muted: true, playsinline: true, autoplay: true, "aria-label": cam ? `Live: ${cam.name}` : "empty" }),
      el("img", { alt: cam ? `Live: ${cam.name}` : "", hidden: true }),
      el("canvas", { class: "tile-overlay", "aria-hidden": "true" })),
    el("figcaption", {},
      el("span", { class: "tile-name" }, cam ? cam.name : "—"),
      el("span", { class: `pill ${cam && cam.live ? "online" : "offline"}` }, cam ? (cam.live ? "live" : "no signal") : "empty"),
      el("span", { class: "tile-mode muted" }, ""),
      el("span", { class: "tile-lag" }, ""),
      el("time", { class: "tile-time muted" }, "")));
  $("video", tile).muted = true;
  if (cam) {
    const open = () => openSingle(cam.camera_id);
    tile.addEventListener("dblclick", open);
    tile.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
    tile.append(el("button", { type: "button", class: "tile-open link", onclick: open, "aria-label": `Open ${cam.name}` }, "open"));
  }
  return tile;
}

function stopPlayers() {
  for (const p of live.players) p.stop();
  live.players = [];
}

async function loadLive() {
  const data = await api("/api/live");
  live.cameras = data.cameras;
  return data;
}

async function renderLive() {
  stopPlayers();
  const section = $("#tab-live");
  const turn = (live.turn = (live.turn || 0) + 1);  // only the newest render draws (a tab click and an open race)
  let data;
  try { data = await loadLive(); } catch (err) { if (turn === live.turn) setStatus(section, err.message, true); return; }
  if (turn !== live.turn) return;
  stopPlayers();
  const grid = $("#live-grid");
  const single = live.single && live.cameras.find((c) => c.camera_id === live.single);
  const n = single ? 1 : live.layout;
  grid.className = `live-grid n${n}`;
  const ordered = single ? [single] : [...live.cameras].sort((a, b) => Number(b.live) - Number(a.live)).slice(0, n);
  const tiles = [];
  for (let i = 0; i < n; i++) tiles.push(liveTile(ordered[i]));
  grid.replaceChildren(...tiles);
  $("#live-back").hidden = !single;
  renderPtz(single || null);
  $("#live-title").textContent = single ? single.name : "Live";
  const overlays = Boolean(single) && live.overlays;
  for (let i = 0; i < ordered.length; i++) {
    const p = new LivePlayer(tiles[i], ordered[i], { overlays });
    live.players.push(p);
    p.start();
  }
  const on = live.cameras.filter((c) => c.live).length;
  setStatus(section, `${live.cameras.length} camera(s) in scope, ${on} live.${single ? " Overlays show tracked objects, zones and lines." : " Double-click (or Enter) a picture to open it."}`);
}

// -- PTZ (single-camera view; users with the 'ptz' permission; GB/T 28181 channels) ---------------------------
// An arrow or zoom button moves the camera while it is held (pointer or Space/Enter) and stops it on release.
// The API audits and rate-limits each command (a stop after a move is never refused); refusals show below.
const ptz = { camera: null, moving: false };
const PTZ_PAD = [["↖", -1, 1, "up-left"], ["↑", 0, 1, "up"], ["↗", 1, 1, "up-right"], ["←", -1, 0, "left"], null,
  ["→", 1, 0, "right"], ["↙", -1, -1, "down-left"], ["↓", 0, -1, "down"], ["↘", 1, -1, "down-right"]];

function ptzSay(text, isError = false) {
  const status = $("#ptz-status");
  if (!status) return;
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function ptzRefusal(err) {
  if (err.status === 403) return `Not allowed: ${err.message}`;
  if (err.status === 429) return `Too many commands: ${err.message}`;
  if (err.status === 409) return `Not possible now: ${err.message}`;
  if (err.status === 503) return `Not sent: ${err.message}`;
  if (err.status === 404) return `Unknown camera: ${err.message}`;
  return `Refused (${err.status || "network"}): ${err.message}`;
}

async function ptzSend(body, done) {
  const cam = ptz.camera;
  if (!cam) return false;
  try {
    await api(`/api/cameras/${encodeURIComponent(cam)}/ptz`, { method: "POST", json: body });
    if (done) ptzSay(done);
    return true;
  } catch (err) { ptzSay(ptzRefusal(err), true); return false; }
}

function ptzSpeed() { return Math.max(1, Math.min(255, Number($("#ptz-speed").value) || 128)); }

function ptzPreset() {
  const n = Number($("#ptz-preset").value);
  if (!Number.isInteger(n) || n < 1 || n > 255) { ptzSay("A preset is a number from 1 to 255.", true); return null; }
  return n;
}

async function ptzStart(button, pan, tilt, zoom, label) {
  if (ptz.moving) return;
  ptz.moving = true;
  button.setAttribute("aria-pressed", "true");
  const sent = await ptzSend({ action: "move", pan, tilt, zoom, speed: ptzSpeed() }, `Moving ${label}…`);
  if (!sent) { ptz.moving = false; button.setAttribute("aria-pressed", "false"); }
  else if (button.dataset.held !== "1") ptzStop(button);  // released before the move was sent
}

async function ptzStop(button) {
  button.dataset.held = "0";
  button.setAttribute("aria-pressed", "false");
  if (!ptz.moving) return;
  ptz.moving = false;
  await ptzSend({ action: "stop" }, "Stopped.");
}

function holdButton(text, label, pan, tilt, zoom) {
  const b = el("button", { type: "button", "aria-label": `${label} (hold)`, "data-ptz": label, title: `Hold to move ${label}` }, text);
  const press = () => { b.dataset.held = "1"; ptzStart(b, pan, tilt, zoom, label); };
  const release = () => { if (b.dataset.held === "1") ptzStop(b); };
  b.addEventListener("pointerdown", (ev) => { ev.preventDefault(); b.setPointerCapture?.(ev.pointerId); press(); });
  for (const name of ["pointerup", "pointercancel", "lostpointercapture"]) b.addEventListener(name, release);
  b.addEventListener("keydown", (ev) => { if ((ev.key === " " || ev.key === "Enter") && !ev.repeat) { ev.preventDefault(); press(); } });
  b.addEventListener("keyup", (ev) => { if (ev.key === " " || ev.key === "Enter") release(); });
  b.addEventListener("blur", release);
  return b;
}

function renderPtz(cam) {
  const box = $("#live-ptz");
  if (ptz.moving && ptz.camera) ptzSend({ action: "stop" });  // leaving a camera that was moving
  ptz.moving = false;
  ptz.camera = cam ? cam.camera_id : null;
  const allowed = Boolean(cam) && state.user && state.user.permissions.includes("ptz");
  box.hidden = !allowed;
  if (!allowed) { box.replaceChildren(); return; }
  if (cam.kind !== "gb28181") {
    box.replaceChildren(el("p", { class: "muted", id: "ptz-none" },
      `PTZ: not available for this ${cam.kind || "unregistered"} camera — only GB/T 28181 channels are steered from here.`));
    return;
  }
  const pad = el("div", { class: "ptz-pad", role: "group", "aria-label": "Pan and tilt" },
    ...PTZ_PAD.map((d) => (d ? holdButton(d[0], d[3], d[1], d[2], 0)
      : el("button", { type: "button", "data-ptz": "stop", "aria-label": "stop", onclick: () => { ptz.moving = true; ptzStop(ptzStopButton); } }, "■"))));
  const ptzStopButton = $("[data-ptz=stop]", pad);
  const num = (id, value, min, max, label) => el("label", {}, label, " ", el("input", { id, type: "number", min, max, value, size: 4 }));
  const presetAction = (action, verb) => el("button", { type: "button", "data-ptz": action, onclick: () => {
    const preset = ptzPreset();
    if (preset !== null) ptzSend({ action, preset }, `${verb} preset ${preset}.`);
  } }, verb);
  box.replaceChildren(
    pad,
    el("fieldset", { class: "ptz-zoom" }, el("legend", {}, "Zoom"), holdButton("−", "zoom out", 0, 0, -1), holdButton("+", "zoom in", 0, 0, 1)),
    el("fieldset", {}, el("legend", {}, "Speed"), el("input", { id: "ptz-speed", type: "range", min: 1, max: 255, value: 128, "aria-label": "PTZ speed (1-255)" })),
    el("fieldset", {}, el("legend", {}, "Presets"), num("ptz-preset", 1, 1, 255, "No."),
      presetAction("preset_call", "Go to"), presetAction("preset_set", "Save here as"), presetAction("preset_delete", "Delete")),
    el("fieldset", {}, el("legend", {}, "Home position"), num("ptz-reset", 60, 0, 86400, "return after (s idle)"),
      el("button", { type: "button", "data-ptz": "home", onclick: () => {
        const preset = ptzPreset();
        const reset = Number($("#ptz-reset").value);
        if (preset !== null) ptzSend({ action: "home", preset, enabled: true, reset_s: Number.isInteger(reset) && reset >= 0 ? reset : 60 }, `Home position: preset ${preset}.`);
      } }, "Set home to preset"),
      el("button", { type: "button", "data-ptz": "home-off", onclick: () => ptzSend({ action: "home", enabled: false }, "Home position off.") }, "Home off")),
    el("p", { id: "ptz-status", class: "status", role: "status" }, "Hold an arrow to move the camera; it stops when you let go."));
}

function openSingle(cameraId) {
  live.single = cameraId;
  live.overlays = true;
  $("#live-overlays").checked = true;
  renderLive();
}

$("#live-layouts").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-layout]");
  if (!b) return;
  live.layout = Number(b.dataset.layout);
  live.single = null;
  for (const x of $$("#live-layouts [data-layout]")) x.setAttribute("aria-pressed", String(x === b));
  renderLive();
});
$("#live-back").addEventListener("click", () => { live.single = null; renderLive(); });
$("#live-overlays").addEventListener("change", (ev) => { live.overlays = ev.target.checked; if (live.single) renderLive(); });

tabHooks.live = (shown) => { if (shown) renderLive(); else { stopPlayers(); renderPtz(null); } };
