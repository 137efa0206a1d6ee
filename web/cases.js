// Tubeline web UI — the case library: cases, their timeline and sightings, saving hits and clips from the
// sighting dialog, enhancing a frame (original and enhanced copy side by side), links to other cases, the
// redaction preview (each object numbered, blurred or kept per item) and evidence packages. Uses app.js's helpers (state, api, el, $, $$, fmtTime, caseRef, selectTab).
"use strict";

const cases = { current: null, items: [], exportId: null };

function caseLine(c) {
  return `${c.number} · ${c.status}${c.my_role ? " · " + c.my_role : ""}`;
}

async function loadCases(select) {
  const data = await api("/api/cases");
  const list = $("#case-list");
  list.replaceChildren(...data.cases.map((c) => el("li", {}, el("button", {
    type: "button", "data-case": c.number, "aria-current": c.number === (select || cases.current?.number) ? "true" : "false",
    onclick: () => openCase(c.number),
  }, el("strong", {}, c.title), el("br"), el("span", { class: "muted" }, caseLine(c))))));
  const target = select || cases.current?.number || data.cases.find((c) => c.number === caseRef())?.number;
  if (target) await openCase(target);  // (again: what was saved from the other sections shows up)
}

async function openCase(number) {
  const section = $("#tab-cases");
  if (cases.current && cases.current.number !== number) { redaction.keep.clear(); redaction.blur.clear(); }
  try {
    cases.current = await api(`/api/cases/${encodeURIComponent(number)}`);
  } catch (err) { setStatus(section, err.message, true); return; }
  const c = cases.current;
  for (const b of $$("#case-list [data-case]")) b.setAttribute("aria-current", b.dataset.case === number ? "true" : "false");
  $("#case").value = number;  // searches, trajectories and exports run under the open case
  sessionStorage.setItem("tubeline-case", number);
  $("#case-detail").hidden = false;
  $("#case-title").textContent = `${c.number} — ${c.title}`;
  $("#case-meta").textContent = `${c.case_type}, unit ${c.unit}, ${c.status}; legal basis: ${c.legal_basis}; purpose: ${c.purpose}; ` +
    `members: ${c.members.map((m) => `${m.user} (${m.role})`).join(", ")}`;
  setStatus(section, "");
  await Promise.all([loadItems(), loadLinks(), loadPackages()]);
}

function itemLabel(i) {
  const what = { plate: `Plate ${i.text}`, track: `Track ${i.text || i.track_id}`, face: "Face", alert: `Alert: ${i.text}`,
    clip: `Clip (${i.text})`, moment: "Synopsis moment", frame: i.text, note: `Note: ${i.note}` }[i.kind] || i.kind;
  return `${i.time ? fmtTime(i.time) + " · " : ""}${what}${i.camera_name ? " · " + i.camera_name : ""}`;
}

async function loadItems(q) {
  const c = cases.current;
  const data = await api(`/api/cases/${encodeURIComponent(c.number)}/items?${query({ q })}`);
  cases.items = data.items;
  $("#case-items").replaceChildren(...data.items.map((i) => el("li", { "data-item": i.item_id, "data-kind": i.kind },
    i.crop_url || i.media_urls.length ? el("img", { src: i.media_urls[i.media_urls.length - 1] || i.crop_url, alt: "" }) : null,
    el("span", { class: i.linked_from ? "linked" : "" }, itemLabel(i), i.linked_from ? ` (from ${i.linked_from})` : ""),
    i.note && i.kind !== "note" ? el("span", { class: "muted" }, `“${i.note}”`) : null,
    !i.linked_from && i.camera_id && ["plate", "track", "face", "alert", "clip", "moment"].includes(i.kind)
      ? el("button", { type: "button", class: "enhance-item", onclick: () => openEnhance(i) }, "Enhance") : null,
    i.kind === "frame" ? el("button", { type: "button", onclick: () => showFrame(i) }, "Side by side") : null,
    !i.linked_from && i.camera_id && ["plate", "track", "face", "alert", "clip", "moment"].includes(i.kind)
      ? el("button", { type: "button", class: "redact-item", onclick: () => previewRedaction(i) }, "Redaction preview") : null)));
  // sightings: one line per camera, the items seen there in time order (the camera map, where one is, shows them too)
  const byCamera = new Map();
  for (const i of data.items.filter((x) => x.camera_id && x.time)) {
    if (!byCamera.has(i.camera_id)) byCamera.set(i.camera_id, { name: i.camera_name, lat: i.lat, lon: i.lon, items: [] });
    byCamera.get(i.camera_id).items.push(i);
  }
  $("#case-map").replaceChildren(...[...byCamera.values()].map((cam) => el("li", {},
    `${cam.name}${cam.lat !== null && cam.lat !== undefined ? ` (${cam.lat.toFixed(4)}, ${cam.lon.toFixed(4)})` : ""}: `,
    cam.items.map((i) => fmtTime(i.time).slice(11)).join(", "))));
}

function showOnMap() {  // the trajectory view's plot (camera positions over the offline basemap), in time order
  const sightings = cases.items.filter((i) => ["plate", "track", "face"].includes(i.kind) && i.time)
    .map((i) => ({ kind: i.kind, id: i.ref, camera_id: i.camera_id, camera_name: i.camera_name, lat: i.lat ?? null,
      lon: i.lon ?? null, time: i.time }));
  selectTab("trajectory");
  showTrajectory($("#tab-trajectory"), { subject: `case ${cases.current.number}`, count: sightings.length,
    scope: "the case's saved sightings", sightings });
}

$("#case-on-map").addEventListener("click", showOnMap);

async function loadLinks() {
  const c = cases.current;
  const data = await api(`/api/cases/${encodeURIComponent(c.number)}/links`);
  $("#case-links").replaceChildren(...data.links.map((l) => el("li", {},
    `${l.case} — ${l.title} (${l.status}, lead ${l.owner}): ${l.reasons.map((r) => `${r.kind} ${r.value || (r.score ?? "")}`).join(", ")} · ${l.decision}`,
    l.decision === "suggested" ? el("button", { type: "button", onclick: () => decide(l.case, "confirm") }, "Confirm") : null,
    l.decision === "suggested" ? el("button", { type: "button", onclick: () => decide(l.case, "reject") }, "Reject") : null)));
}

async function decide(other, decision) {
  await api(`/api/cases/${encodeURIComponent(cases.current.number)}/links/${encodeURIComponent(other)}`,
    { method: "POST", json: { decision } });
  await Promise.all([loadItems(), loadLinks()]);
}

async function loadPackages() {
  const c = cases.current;
  const data = await api(`/api/cases/${encodeURIComponent(c.number)}/packages`);
  $("#package-list").replaceChildren(...data.packages.map((p) => el("li", {},
    el("a", { href: p.url, download: `${c.number}-${p.package_id}.zip`, class: "package-link" }, `${p.package_id}.zip`),
    ` · ${p.files} files, ${(p.bytes / 1024).toFixed(0)} KiB${p.redacted ? ", redacted" : ""} · SHA-256 ${p.sha256.slice(0, 16)}… · key ${p.signing_key} ${p.fingerprint}`)));
}

async function saveItem(body) {
  const number = caseRef();
  if (!number) throw new Error("Open a case first (Cases) or enter its number (top right).");
  return api(`/api/cases/${encodeURIComponent(number)}/items`, { method: "POST", json: body });
}

// -- the sighting dialog: save the hit, save the clip once cut ---------------------------------------
$("#save-hit").addEventListener("click", async () => {
  const s = state.current;
  const status = $("#detail-status");
  try {
    const item = await saveItem({ kind: s.kind, ref: s.id });
    status.textContent = `Saved to case ${item.case} (audit entry ${item.audit_id}).`;
    status.classList.remove("error");
  } catch (err) { status.textContent = err.message; status.classList.add("error"); }
});

$("#save-clip").addEventListener("click", async () => {
  const status = $("#detail-status");
  try {
    const item = await saveItem({ kind: "clip", ref: cases.exportId });
    status.textContent = `Clip saved to case ${item.case}, SHA-256 ${item.sha256.slice(0, 16)}…`;
    status.classList.remove("error");
  } catch (err) { status.textContent = err.message; status.classList.add("error"); }
});

function offerSaving() {  // the dialog shows a sighting: offer saving it; a cut clip: offer saving that
  const perms = state.user ? state.user.permissions : [];
  const open = $("#detail").open && perms.includes("cases");
  const link = $("#download-clip");
  const m = !link.hidden && /\/api\/exports\/([^/]+)\/clip\.mp4/.exec(link.getAttribute("href") || "");
  cases.exportId = m ? m[1] : null;
  for (const [id, hide] of [["#save-hit", !open], ["#save-clip", !(open && cases.exportId)]]) {
    if ($(id).hidden !== hide) $(id).hidden = hide;  // (only real changes: the buttons are not observed)
  }
}
new MutationObserver(offerSaving).observe($("#detail"), { attributes: true, attributeFilter: ["open"] });
new MutationObserver(offerSaving).observe($("#download-clip"), { attributes: true, attributeFilter: ["hidden", "href"] });

// -- enhancement: original and enhanced copy side by side -------------------------------------------
let enhanceSource = null;

function openEnhance(item) {
  enhanceSource = item;
  $("#enhance-title").textContent = `Enhance the frame of: ${itemLabel(item)}`;
  $("#enhance-original").removeAttribute("src");
  $("#enhance-result").removeAttribute("src");
  $("#enhance-status").textContent = "";
  $("#enhance").showModal();
}

function showFrame(item) {
  enhanceSource = null;
  $("#enhance-title").textContent = itemLabel(item);
  $("#enhance-original").src = item.media_urls[0];
  $("#enhance-result").src = item.media_urls[1];
  $("#enhance-caption").textContent = `Enhanced copy: ${item.details.operations.map((o) => o.op + (o.model ? ` (${o.model})` : "")).join(" → ")}`;
  $("#enhance").showModal();
}

$("#enhance-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!enhanceSource) return;
  const form = ev.target;
  const ops = $$("input[name=op]:checked", form).map((x) => ({ op: x.value }));
  const region = form.region.value.trim() ? form.region.value.split(",").map((v) => Number(v.trim())) : null;
  const status = $("#enhance-status");
  status.textContent = "Enhancing…";
  status.classList.remove("error");
  try {
    const frame = await api(`/api/cases/${encodeURIComponent(cases.current.number)}/frames`,
      { method: "POST", json: { item_id: enhanceSource.item_id, operations: ops, region } });
    $("#enhance-original").src = frame.media_urls[0];
    $("#enhance-result").src = frame.media_urls[1];
    $("#enhance-caption").textContent = `Enhanced copy: ${frame.details.operations.map((o) => `${o.op} ${o.input}→${o.output}` + (o.model ? ` (${o.model})` : "")).join(" → ")}`;
    status.textContent = `Saved as a new item of the case; the original is kept (SHA-256 ${frame.details.original_sha256.slice(0, 16)}…).`;
    await loadItems();
  } catch (err) { status.textContent = err.message; status.classList.add("error"); }
});

// -- redaction preview: each object numbered, the investigator's blur/keep choice per object and item ----
const redaction = { keep: new Set(), blur: new Set(), source: null };

function redactBody() {
  return { faces: true, plates: true, keep: [...redaction.keep], blur: [...redaction.blur] };
}

async function previewRedaction(item) {
  if (item) {
    redaction.source = item;
    $("#redact-title").textContent = `Redaction preview: ${itemLabel(item)}`;
    $("#redact-objects").replaceChildren();
    $("#redact-image").removeAttribute("src");
    if (!$("#redact").open) $("#redact").showModal();
  }
  const status = $("#redact-status");
  status.textContent = "Finding faces and plates in the clip…";
  status.classList.remove("error");
  try {
    const p = await api(`/api/cases/${encodeURIComponent(cases.current.number)}/redaction/preview`,
      { method: "POST", json: { ...redactBody(), item_id: redaction.source.item_id } });
    $("#redact-image").src = p.image;
    $("#redact-objects").replaceChildren(...p.objects.map((o) => el("li", {}, el("label", {},
      el("input", { type: "checkbox", name: "blur", value: o.label, checked: o.blurred }),
      ` ${o.label}${o.text ? " " + o.text : ""}${o.in_frame ? "" : " (earlier)"}`))));
    const blurred = p.objects.filter((o) => o.blurred).length;
    status.textContent = `${p.objects.length} object(s), ${blurred} blurred at ${p.at_s.toFixed(1)} s. ` +
      "Untick an object to keep it clear, tick one to blur it; the choice applies to this item's copies in the package.";
  } catch (err) { status.textContent = err.message; status.classList.add("error"); }
}

$("#redact-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const item = redaction.source.item_id;
  for (const box of $$("input[name=blur]", ev.target)) {
    const key = `${item}/${box.value}`;
    redaction.keep.delete(key);
    redaction.blur.delete(key);
    (box.checked ? redaction.blur : redaction.keep).add(key);
  }
  $("#package-form").redact.checked = true;  // choosing what to blur means the package is redacted
  previewRedaction(null);
});

// -- forms ---------------------------------------------------------------------------------------
$("#case-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = Object.fromEntries(new FormData(ev.target).entries());
  try {
    const c = await api("/api/cases", { method: "POST", json: { ...body, number: body.number.trim().toUpperCase() } });
    ev.target.reset();
    $("#case-new").open = false;
    await loadCases(c.number);
  } catch (err) { setStatus($("#tab-cases"), err.message, true); }
});

$("#case-note").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await saveItem({ kind: "note", note: ev.target.note.value });
    ev.target.reset();
    await loadItems();
  } catch (err) { setStatus($("#tab-cases"), err.message, true); }
});

$("#case-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadItems(ev.target.q.value.trim()); });

$("#case-search").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const data = await api(`/api/cases/search?${query({ q: ev.target.q.value.trim() })}`);
  setStatus($("#tab-cases"), `${data.count} item(s): ` + data.items.map((i) => `${i.case}: ${itemLabel(i)}`).join("; "));
});

$("#package-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const button = $("button[type=submit]", form);
  button.disabled = true;
  setStatus($("#tab-cases"), "Building the evidence package (clips are cut from the original recordings)…");
  try {
    const body = { reason: form.reason.value };
    if (form.redact.checked) body.redact = redactBody();
    const p = await api(`/api/cases/${encodeURIComponent(cases.current.number)}/packages`, { method: "POST", json: body });
    setStatus($("#tab-cases"), `Package ${p.package_id}: ${p.files} files, signed with key ${p.signing_key} (${p.fingerprint}).` +
      (p.skipped.length ? ` Skipped: ${p.skipped.join("; ")}` : ""));
    await loadPackages();
  } catch (err) { setStatus($("#tab-cases"), err.message, true); }
  finally { button.disabled = false; }
});

$("#tabs").addEventListener("click", (ev) => {
  const tab = ev.target.closest("[data-tab]");
  if (tab && tab.dataset.tab === "cases") loadCases().catch((err) => setStatus($("#tab-cases"), err.message, true));
});
