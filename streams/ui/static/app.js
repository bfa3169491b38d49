// The page at /ui: an owner's (or, with the admin key, any owner's) contracts, a chart of
// the billable area with its quota, the Leaf users and their overlap, and a map of the
// counted area that explains any point clicked. It reads the JSON API only; the key stays
// in this tab's sessionStorage and goes out as a Bearer header.
"use strict";

const UNIT = "hectares";
const SHORT = "ha";
const MAX_GROUND_PAGES = 20; // 500 pieces a page: the map draws at most 10,000 pieces
const store = window.sessionStorage;
const state = {
  contracts: [], contract: null, chart: null, map: null, ground: null, mark: null, generation: 0,
};
window.acreage = state; // for the browser test, and for a curious reader's console

const $ = (id) => document.getElementById(id);

function area(value) {
  return value === null || value === undefined ? "none" : `${value.toFixed(2)} ${SHORT}`;
}

function show(id, value) {
  const el = $(id);
  el.textContent = area(value);
  el.dataset.value = value === null || value === undefined ? "" : String(value);
}

function fail(error) {
  $("error").textContent = String(error.message || error);
  $("error").hidden = false;
}

async function api(path, params = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries({ apiOwner: store.getItem("acreage.owner"), ...params })) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const response = await fetch(url, {
    headers: { Authorization: `Bearer ${store.getItem("acreage.key")}` },
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status}: ${body.message || response.statusText}`);
  return body;
}

// Every page of a /billing list (pages count from 1, as on every list of the API).
async function allDays(path, params) {
  const days = [];
  for (let page = 1; ; page += 1) {
    const got = await api(path, { ...params, page, size: 100 });
    days.push(...got);
    if (got.length < 100) return days;
  }
}

// ---- logging in ---------------------------------------------------------------------

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  store.setItem("acreage.key", $("key").value.trim());
  store.setItem("acreage.owner", $("owner").value.trim());
  $("key").value = "";
  start();
});

$("logout").addEventListener("click", () => {
  store.removeItem("acreage.key");
  store.removeItem("acreage.owner");
  window.location.reload();
});

async function start() {
  $("error").hidden = true;
  if (!store.getItem("acreage.key")) return;
  try {
    state.contracts = await api("/billing/contracts", { unit: UNIT, size: 100 });
  } catch (error) {
    fail(error);
    return;
  }
  $("login").hidden = true;
  $("logout").hidden = false;
  $("who").hidden = false;
  const owners = new Set(state.contracts.map((c) => c.apiOwner));
  $("who").textContent = owners.size === 1 ? [...owners][0]
    : owners.size ? `${owners.size} API owners` : "no contracts yet";
  $("app").hidden = false;
  contractsTable();
  const first = state.contracts.find((c) => c.product !== "AUDIT_FIELDS_BOUNDARY");
  if (first) choose(first);
}

// ---- contracts ----------------------------------------------------------------------

function contractsTable() {
  const body = $("contracts").tBodies[0];
  body.replaceChildren();
  const owners = new Set(state.contracts.map((c) => c.apiOwner));
  for (const c of state.contracts) {
    const row = body.insertRow();
    row.dataset.product = c.product;
    row.dataset.contract = c.contractId;
    const term = c.currentTerm;
    const cells = [owners.size > 1 ? `${c.apiOwner} · ${c.product}` : c.product, `${term.startDate} – ${term.endDate}`, area(c.used), area(c.quota),
      c.percentUsed === null ? "" : `${c.percentUsed.toFixed(1)} %`, area(c.footprint)];
    for (const text of cells) row.insertCell().textContent = text;
    row.cells[2].dataset.value = String(c.used);
    row.addEventListener("click", () => choose(c));
  }
}

function choose(contract) {
  state.contract = contract;
  for (const row of $("contracts").tBodies[0].rows) {
    row.classList.toggle("selected", row.dataset.contract === contract.contractId);
  }
  $("contract").hidden = false;
  $("contract-title").textContent = `${contract.product} · term ${contract.currentTerm.index}`;
  const today = new Date().toISOString().slice(0, 10);
  const last = new Date(Date.parse(contract.currentTerm.endDate) - 86400000).toISOString().slice(0, 10);
  $("start").value = contract.currentTerm.startDate;
  $("end").value = today < last ? today : last;
  $("scope").replaceChildren(new Option("API owner (overlaps removed)", ""));
  if (contract.product === "AUDIT_FIELDS_BOUNDARY") {
    fail(new Error("AUDIT_FIELDS_BOUNDARY is a live union: the chart and map cover the other products"));
    return;
  }
  refresh(true);
}

$("range").addEventListener("submit", (event) => {
  event.preventDefault();
  refresh(false);
});

// Each refresh draws only while it is the latest: a slow answer for a contract chosen
// before must not overwrite the one chosen since. body[data-ready] names what is drawn.
async function refresh(newScopes) {
  $("error").hidden = true;
  document.body.dataset.ready = "";
  const generation = ++state.generation;
  const current = () => generation === state.generation;
  try {
    await Promise.all([chart(current), users(current, newScopes)]);
    await ground(current);
    if (current()) document.body.dataset.ready = state.contract.product;
  } catch (error) {
    fail(error);
  }
}

// ---- chart: billable area by day, cumulative, against the quota ----------------------

async function chart(current) {
  const c = state.contract;
  const range = { unit: UNIT, startTime: $("start").value, endTime: $("end").value };
  const base = `/billing/contracts/${encodeURIComponent(c.contractId)}/consumption`;
  const [billable, owner] = await Promise.all([
    allDays(`${base}/leaf-users`, range), allDays(`${base}/api-owner`, range),
  ]);
  if (!current()) return;
  const xs = billable.map((d) => Date.parse(`${d.date}T00:00:00Z`) / 1000);
  const data = [xs, billable.map((d) => d.areaAdded), billable.map((d) => d.totalArea),
    owner.map((d) => d.totalArea), billable.map(() => c.quota)];
  const last = billable[billable.length - 1];
  $("chart-end").textContent = last ? last.date : "";
  show("billable-total", last ? last.totalArea : 0);
  show("quota", c.quota);
  show("footprint-total", owner.length ? owner[owner.length - 1].totalArea : 0);
  const opts = {
    width: Math.max(320, $("chart").clientWidth), height: 300,
    // half a day either side, so one day is a bar, not a point in a span of years;
    // the area axis starts at 0 and shows the quota
    scales: {
      x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] },
      y: { range: (u, min, max) => [0, 1.05 * Math.max(max, c.quota || 0) || 1] },
    },
    series: [
      {},
      { label: "added that day", stroke: "#6a9f3a", fill: "rgba(106,159,58,0.35)",
        paths: uPlot.paths.bars({ size: [0.7, 40] }), value: (u, v) => area(v) },
      { label: "billable, cumulative", stroke: "#1f4e9c", width: 2, value: (u, v) => area(v) },
      { label: "footprint (owner)", stroke: "#8c8c8c", dash: [4, 4], value: (u, v) => area(v) },
      { label: "quota", stroke: "#c0392b", width: 2, value: (u, v) => area(v) },
    ],
    // ticks on whole UTC days, labelled by date: the series has one value a day
    axes: [
      { incrs: [86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400, 91 * 86400],
        values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(0, 10)) },
      { label: SHORT, size: 60 },
    ],
  };
  if (state.chart) state.chart.destroy();
  state.chart = new uPlot(opts, data, $("chart"));
  $("chart").dataset.points = String(xs.length);
}

// ---- Leaf users and their overlap -----------------------------------------------------

async function users(current, newScopes) {
  const c = state.contract;
  const day = $("end").value;
  const found = await api(`/billing/contracts/${encodeURIComponent(c.contractId)}/consumption`,
    { unit: UNIT, timestamp: day, size: 100 });
  if (!current()) return;
  $("users-day").textContent = day;
  const body = $("users").tBodies[0];
  body.replaceChildren();
  for (const u of found.leafUsers) {
    const row = body.insertRow();
    row.insertCell().textContent = u.leafUserId;
    row.insertCell().textContent = area(u.totalArea);
    row.dataset.user = u.leafUserId;
    if (newScopes) $("scope").add(new Option(`Leaf user ${u.leafUserId}`, u.leafUserId));
  }
  show("users-total", found.leafUsersTotalArea);
  show("owner-total", found.owner.totalArea);
  show("overlap", found.overlapArea);
}

// ---- map of the counted area, and explain my bill -------------------------------------

async function mapReady() {
  if (state.map) return state.map;
  const config = await (await fetch("/ui/config.json")).json();
  state.map = L.map("map", { preferCanvas: false }).setView([0, 0], 2);
  if (config.tiles) {
    L.tileLayer(config.tiles, { attribution: config.attribution, maxZoom: 19 }).addTo(state.map);
  }
  state.map.on("click", (event) => explain(event.latlng));
  return state.map;
}

// The contract's owner is named: the admin key may have logged in without one, and then
// lists every owner's contracts.
function scopeParams() {
  return { apiOwner: state.contract.apiOwner, product: state.contract.product,
    leafUserId: $("scope").value,
    date: $("end").value, start_date: $("start").value, end_date: $("end").value, unit: UNIT };
}

async function ground(current) {
  const map = await mapReady();
  const features = [];
  let after = -1;
  for (let page = 0; page < MAX_GROUND_PAGES && after !== null; page += 1) {
    const got = await api("/usage/ground", { ...scopeParams(), after, limit: 500 });
    if (!current()) return;
    features.push(...got.features);
    after = got.next_after;
  }
  if (state.ground) state.ground.remove();
  state.ground = L.geoJSON({ type: "FeatureCollection", features }, {
    style: { color: "#2f6f2f", weight: 1, fillColor: "#6a9f3a", fillOpacity: 0.45 },
    bubblingMouseEvents: true,
  }).addTo(map);
  const total = features.reduce((sum, f) => sum + f.properties.area, 0);
  $("ground-count").textContent = String(features.length);
  $("ground-count").dataset.value = String(features.length);
  show("ground-area", total);
  if (features.length) {
    const bounds = state.ground.getBounds();
    map.fitBounds(bounds, { padding: [10, 10] });
    $("map").dataset.bounds = JSON.stringify([bounds.getWest(), bounds.getSouth(),
      bounds.getEast(), bounds.getNorth()]);
  }
}

async function explain(latlng) {
  const target = $("explain");
  if (state.mark) state.mark.remove();
  state.mark = L.circleMarker(latlng, { radius: 5, color: "#c0392b" }).addTo(state.map);
  try {
    const found = await api("/usage/explain", {
      ...scopeParams(), lon: latlng.lng, lat: latlng.lat, page_size: 20,
    });
    target.replaceChildren(explanation(found));
  } catch (error) {
    fail(error);
  }
}

function explanation(found) {
  const box = document.createElement("div");
  const head = document.createElement("p");
  const where = `${found.lat.toFixed(5)}, ${found.lon.toFixed(5)}`;
  const by = found.counted.map((c) => c.counted_by).filter((o) => o);
  if (!found.counted.length) {
    head.textContent = `Nobody counted ${where} in ${found.scope} between ${found.start_date} and ${found.end_date}.`;
  } else if (!by.length) {
    head.textContent = `${where} was counted on ${found.counted[0].day}; its piece predates origins.`;
  } else {
    const o = by[0];
    head.innerHTML = "";
    head.append(`${where} was counted by event `, strong(o.event_id, "counted-by"),
      ` (${o.event_type}) of Leaf user `, strong(o.leaf_user_id, "counted-user"),
      ` on ${found.counted[0].day}, in ${found.product}, scope ${found.scope}.`);
  }
  box.append(head);
  if (found.deduplicated.length) {
    const title = document.createElement("p");
    title.textContent = "Deduplicated against it (added nothing there):";
    const list = document.createElement("ul");
    list.id = "deduplicated";
    for (const d of found.deduplicated) {
      const item = document.createElement("li");
      item.dataset.event = d.event_id;
      item.textContent = `${d.event_id} · ${d.event_type} · Leaf user ${d.leaf_user_id} · ${d.timestamp}`;
      list.append(item);
    }
    box.append(title, list);
    if (found.has_more) box.append("… and more (page 1 shown).");
  }
  return box;
}

function strong(text, id) {
  const b = document.createElement("b");
  b.id = id;
  b.textContent = text;
  return b;
}

start();
