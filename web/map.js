// Camera map: cameras at their positions (Web Mercator) over an offline basemap of country boundaries
// (world-atlas, Natural Earth — web/vendor/world-atlas/SOURCE.md) or the site's own tiles (api.map_tile_url),
// coloured by status; a click opens the camera live. The trajectory view draws the same basemap.
"use strict";

const geo = { config: null, countries: null, loading: null, zoom: 1 };

function topoFeatures(topo, name) {
  const [sx, sy] = topo.transform.scale, [tx, ty] = topo.transform.translate;
  const arcs = topo.arcs.map((arc) => { let x = 0, y = 0; return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; }); });
  const arcPoints = (i) => (i >= 0 ? arcs[i] : arcs[~i].slice().reverse());
  const ring = (ids) => ids.flatMap((i, k) => (k ? arcPoints(i).slice(1) : arcPoints(i)));
  return topo.objects[name].geometries.map((g) => ({
    name: (g.properties || {}).name || "",
    polygons: g.type === "Polygon" ? [g.arcs.map(ring)] : g.type === "MultiPolygon" ? g.arcs.map((p) => p.map(ring)) : [],
  }));
}

async function loadBasemap() {
  if (geo.countries) return geo;
  if (!geo.loading) {
    geo.loading = (async () => {
      geo.config = await api("/api/map");
      const res = await fetch(geo.config.basemap, { credentials: "same-origin" });
      geo.countries = topoFeatures(await res.json(), "countries");
      return geo;
    })().catch((err) => { geo.loading = null; throw err; });
  }
  return geo.loading;
}

// Country outlines through any projection (lon, lat) -> [x, y]; rings outside the view are skipped.
function drawBasemap(svgNode, project, W, H) {
  if (!geo.countries) return;
  const g = svg("g", { class: "basemap" });
  for (const c of geo.countries) {
    let d = "";
    for (const poly of c.polygons) {
      for (const r of poly) {
        const pts = r.map(([lon, lat]) => project(lon, lat));
        const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
        // skip rings whose bounding box misses the view (a ring around the view, a country, is kept)
        if (Math.max(...xs) < 0 || Math.min(...xs) > W || Math.max(...ys) < 0 || Math.min(...ys) > H) continue;
        d += "M" + pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join("L") + "Z";
      }
    }
    if (d) {
      const path = svg("path", { d, class: "country" });
      const t = svg("title"); t.textContent = c.name; path.append(t);
      g.append(path);
    }
  }
  svgNode.append(g);
}

const merc = (lon, lat) => {
  const s = Math.sin((Math.max(-85, Math.min(85, lat)) * Math.PI) / 180);
  return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
};

async function renderMap() {
  const section = $("#tab-map");
  try { await loadBasemap(); } catch (err) { setStatus(section, err.message, true); return; }
  let cams = [];
  try {
    const [list, liveList] = await Promise.all([api("/api/cameras"), api("/api/live").catch(() => ({ cameras: [] }))]);
    const live = new Map(liveList.cameras.map((c) => [c.camera_id, c]));
    cams = list.cameras.map((c) => ({ ...c, live: live.has(c.camera_id) && live.get(c.camera_id).live }));
  } catch (err) { setStatus(section, err.message, true); return; }
  const placed = cams.filter((c) => c.latitude !== null && c.longitude !== null);
  const W = 1000, H = 600;
  const map = $("#map");
  map.replaceChildren();
  let x0 = 0, y0 = 0, span = 1;
  if (placed.length) {
    const ms = placed.map((c) => merc(c.longitude, c.latitude));
    const xs = ms.map((m) => m[0]), ys = ms.map((m) => m[1]);
    span = Math.min(1, Math.max(Math.max(...xs) - Math.min(...xs), (Math.max(...ys) - Math.min(...ys)) * (W / H), 2e-4)
      * 1.4 * geo.zoom);
    x0 = (Math.min(...xs) + Math.max(...xs)) / 2 - span / 2;
    y0 = (Math.min(...ys) + Math.max(...ys)) / 2 - (span * H / W) / 2;
  }
  const P = (lon, lat) => { const [mx, my] = merc(lon, lat); return [((mx - x0) / span) * W, ((my - y0) / span) * W]; };
  map.append(svg("rect", { x: 0, y: 0, width: W, height: H, class: "sea" }));
  if (geo.config.tile_url) drawTiles(map, x0, y0, span, W, H);
  else drawBasemap(map, P, W, H);
  for (const c of placed) {
    const [x, y] = P(c.longitude, c.latitude);
    const status = c.live ? "online" : c.status || "unknown";
    const g = svg("g", { class: `map-camera ${status}`, tabindex: 0, role: "button", "data-camera": c.camera_id });
    g.append(svg("circle", { cx: x, cy: y, r: 9 }));
    const label = svg("text", { x: x + 13, y: y + 4 });
    label.textContent = c.name || c.camera_id;
    const t = svg("title");
    t.textContent = `${c.name || c.camera_id}: ${c.live ? "live" : status}${c.reason ? ` (${c.reason})` : ""}`;
    g.append(label, t);
    const open = () => { selectTab("live"); openSingle(c.camera_id); };
    g.addEventListener("click", open);
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
    map.append(g);
  }
  $("#map-attribution").textContent = geo.config.tile_url ? geo.config.attribution : `Basemap: ${geo.config.basemap_source}`;
  setStatus(section, `${placed.length} of ${cams.length} camera(s) have a position. Green: live, red: offline, amber: reconnecting, grey: unknown. Click a camera to watch it.`);
}

function drawTiles(map, x0, y0, span, W, H) {
  const z = Math.max(0, Math.min(19, Math.round(Math.log2(W / (256 * span)))));
  const n = 2 ** z;
  const g = svg("g", { class: "tiles" });
  let count = 0;
  for (let tx = Math.floor(x0 * n); tx <= Math.floor((x0 + span) * n) && count < 64; tx++) {
    for (let ty = Math.floor(y0 * n); ty <= Math.floor((y0 + span * H / W) * n) && count < 64; ty++, count++) {
      if (tx < 0 || ty < 0 || tx >= n || ty >= n) continue;
      const href = geo.config.tile_url.replace("{z}", z).replace("{x}", tx).replace("{y}", ty);
      g.append(svg("image", { href, x: ((tx / n - x0) / span) * W, y: ((ty / n - y0) / span) * W, width: W / (span * n) + 0.5, height: W / (span * n) + 0.5 }));
    }
  }
  map.append(g);
}

$("#map-zoom-out").addEventListener("click", () => { geo.zoom *= 4; renderMap(); });
$("#map-zoom-in").addEventListener("click", () => { geo.zoom = Math.max(1, geo.zoom / 4); renderMap(); });
tabHooks.map = (shown) => { if (shown) renderMap(); };
// The trajectory view draws the same basemap: load it (after login) when that section opens.
tabHooks.trajectory = (shown) => { if (shown) loadBasemap().catch(() => {}); };
