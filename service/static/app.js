// The search page: a photo (uploaded, random or clicked) goes to POST /locate and
// POST /similar; the answers become the location panel and the grid of thumbnails.
// No library: it must work with no network but the service's own.
"use strict";

const EARTH_RADIUS_M = 6371008.8;
const $ = (id) => document.getElementById(id);
const form = { k: $("k"), group: $("group"), radius: $("radius") };
let lastUpload = null;

function imagePath(imageId) {
  return imageId.split("/").map(encodeURIComponent).join("/");
}

function metres(lat1, lon1, lat2, lon2) {
  const rad = Math.PI / 180;
  const h = Math.sin(((lat2 - lat1) * rad) / 2) ** 2 +
    Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.atan2(Math.sqrt(h), Math.sqrt(1 - h));
}

function distanceText(m) {
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(m < 10000 ? 1 : 0)} km`;
}

function showMessage(text) {
  const message = $("message");
  message.textContent = text;
  message.hidden = !text;
}

async function post(path, query) {
  let response;
  if (query.image) {
    const body = new FormData();
    body.append("image", query.image, query.image.name || "photo");
    for (const [key, value] of Object.entries(query.fields)) body.append(key, String(value));
    response = await fetch(path, { method: "POST", body });
  } else {
    response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ image_id: query.imageId, ...query.fields }),
    });
  }
  const answer = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new Error(`${response.status}: ${answer.detail || "error"}`);
  return answer;
}

function parameters() {
  const k = Math.max(1, Math.min(100, parseInt(form.k.value, 10) || 10));
  form.k.value = k;
  return { k, group: form.group.checked, radius: parseFloat(form.radius.value) || 0 };
}

function saveState(imageId, chosen) {
  const url = new URL(window.location.href);
  url.search = "";
  if (imageId) url.searchParams.set("image_id", imageId);
  url.searchParams.set("k", chosen.k);
  if (chosen.group) url.searchParams.set("group", "1");
  if (chosen.radius) url.searchParams.set("radius", chosen.radius);
  window.history.replaceState(null, "", url);
}

async function search(source) {
  const chosen = parameters();
  saveState(source.imageId, chosen);
  showMessage("");
  document.body.setAttribute("aria-busy", "true");
  try {
    const base = source.imageId ? { imageId: source.imageId } : { image: source.image };
    const located = await post("/locate", { ...base, fields: { k: 20 } });
    const fields = { k: chosen.k, group_by_building: chosen.group };
    if (chosen.radius && located.lat !== null) {
      Object.assign(fields, { lat: located.lat, lon: located.lon, radius_m: chosen.radius });
    }
    const similar = await post("/similar", { ...base, fields });
    renderQuery(source);
    renderLocation(located);
    renderResults(similar.neighbours, located);
  } catch (error) {
    showMessage(`The search failed: ${error.message}`);
  } finally {
    document.body.removeAttribute("aria-busy");
  }
}

function renderQuery(source) {
  const image = $("query-image");
  if (source.imageId) {
    image.src = `/images/${imagePath(source.imageId)}/thumbnail?size=256`;
    $("query-caption").textContent = source.imageId;
  } else {
    image.src = URL.createObjectURL(source.image);
    $("query-caption").textContent = source.image.name || "uploaded photo";
  }
  $("summary").hidden = false;
}

function renderLocation(located) {
  const text = $("location-text");
  const map = $("map");
  map.replaceChildren();
  if (located.lat === null) {
    text.textContent = "No estimate: no indexed image matched.";
    return;
  }
  const confidence = `${Math.round(100 * located.confidence)}%` +
    (located.calibrated ? "" : " (uncalibrated)");
  text.textContent = `${located.lat.toFixed(6)}, ${located.lon.toFixed(6)} ± ` +
    `${Math.round(located.uncertainty_m)} m, confidence ${confidence}, from ` +
    `${located.support.length} hit(s)`;
  text.dataset.lat = located.lat;
  text.dataset.lon = located.lon;
  drawMap(map, located);
}

function svg(name, attributes) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  return element;
}

function drawMap(map, located) {
  // metres east and north of the estimate, scaled so the circle and the hits fit
  const offsets = located.support.map((hit) => [
    metres(located.lat, located.lon, located.lat, hit.lon) * Math.sign(hit.lon - located.lon),
    metres(located.lat, located.lon, hit.lat, located.lon) * Math.sign(hit.lat - located.lat),
  ]);
  const extent = Math.max(located.uncertainty_m * 1.3,
    ...offsets.map(([x, y]) => Math.hypot(x, y) * 1.2), 10);
  const scale = 90 / extent;
  map.append(svg("circle", { cx: 0, cy: 0, r: located.uncertainty_m * scale,
    fill: "#bee3f8", stroke: "#2b6cb0", "stroke-width": 1 }));
  for (const [x, y] of offsets) {
    map.append(svg("circle", { cx: x * scale, cy: -y * scale, r: 3, fill: "#dd6b20" }));
  }
  map.append(svg("path", { d: "M -6 0 H 6 M 0 -6 V 6", stroke: "#1d2330", "stroke-width": 2 }));
  const label = svg("text", { x: -95, y: 95, "font-size": 9, fill: "#4a5568" });
  label.textContent = `${distanceText(extent)} to the edge`;
  map.append(label);
}

function renderResults(neighbours, located) {
  const list = $("results");
  list.replaceChildren();
  for (const hit of neighbours) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "result";
    button.dataset.imageId = hit.image_id;
    button.dataset.building = `${hit.dataset_id}/${hit.target_id}`;
    const distance = located.lat === null ? "–"
      : distanceText(metres(located.lat, located.lon, hit.lat, hit.lon));
    button.setAttribute("aria-label", `Search from ${hit.image_id}`);
    const image = document.createElement("img");
    image.src = `/images/${imagePath(hit.image_id)}/thumbnail?size=256`;
    image.alt = `Building ${hit.target_id} of city ${hit.dataset_id}`;
    image.loading = "lazy";
    image.addEventListener("error", () => { image.alt = "(no thumbnail)"; }, { once: true });
    const facts = document.createElement("dl");
    for (const [term, value] of [["building", hit.target_id], ["city", hit.dataset_id],
      ["score", hit.score.toFixed(3)], ["distance", distance]]) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      facts.append(dt, dd);
    }
    button.append(image, facts);
    button.addEventListener("click", () => search({ imageId: hit.image_id }));
    item.append(button);
    list.append(item);
  }
}

function upload(file) {
  if (!file) return;
  lastUpload = file;
  search({ image: file });
}

function setUp() {
  const drop = $("drop");
  $("photo").addEventListener("change", (event) => upload(event.target.files[0]));
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("photo").click(); }
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    upload(event.dataTransfer.files[0]);
  });
  $("random").addEventListener("click", async () => {
    try {
      const response = await fetch("/random");
      const answer = await response.json();
      if (!response.ok) throw new Error(`${response.status}: ${answer.detail}`);
      search({ imageId: answer.image_id });
    } catch (error) {
      showMessage(`No random photo: ${error.message}`);
    }
  });
  for (const input of Object.values(form)) {
    input.addEventListener("change", () => {
      const current = new URL(window.location.href).searchParams.get("image_id");
      if (current) search({ imageId: current });
      else if (lastUpload) search({ image: lastUpload });
    });
  }
  const state = new URL(window.location.href).searchParams;
  if (state.get("k")) form.k.value = state.get("k");
  form.group.checked = state.get("group") === "1";
  if (state.get("radius")) form.radius.value = state.get("radius");
  if (state.get("image_id")) search({ imageId: state.get("image_id") });
}

setUp();
