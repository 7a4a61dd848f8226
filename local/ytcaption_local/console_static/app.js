"use strict";
// YTCaption local console: plain JavaScript, no build step. Talks to the API (/v1) and the
// console's own read-only views (/console/api) with the X-Api-Key the user gave.

const FILL = { succeeded: "#b7e4a8", running: "#9fd3ff", failed: "#f7b5b5", caught: "#ffd59e", none: "#ffffff" };
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const state = { key: sessionStorage.getItem("ytc-key") || "", timers: [], asl: null, audioUrl: null };

const $ = (sel, el = document) => el.querySelector(sel);
function h(tag, attrs = {}, ...kids) {
  const svg = ["svg", "rect", "text", "path", "g", "title", "marker", "defs"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid.nodeType ? kid : String(kid));
  return el;
}

// --- API ------------------------------------------------------------------------------------
async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { "X-Api-Key": state.key, ...(opts.headers || {}) } });
  if (!r.ok) {
    let err = { code: "HTTP_" + r.status, message: r.statusText };
    try { err = (await r.json()).error || err; } catch (e) { /* not JSON */ }
    throw Object.assign(new Error(err.message), { code: err.code, status: r.status });
  }
  return r;
}
const getJSON = async (path, opts) => (await api(path, opts)).json();

function every(ms, fn) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    let again = true;
    try { again = (await fn()) !== false; } catch (e) { showError(e); }
    if (again && !stopped) state.timers.push(setTimeout(tick, ms));
  };
  state.timers.push({ stop: () => { stopped = true; } });
  tick();
}
function stopTimers() {
  for (const t of state.timers) (t && t.stop) ? t.stop() : clearTimeout(t);
  state.timers = [];
}
function showError(e) {
  const box = $("#errors");
  if (box) box.textContent = e.code === "INVALID_API_KEY" ? "Paste the API key printed by `ytcaption local serve`." : `${e.code || "ERROR"}: ${e.message}`;
}
const fmtTime = (s) => {
  const ms = Math.round(s * 1000), hh = Math.floor(ms / 3600000), mm = Math.floor(ms / 60000) % 60;
  const ss = Math.floor(ms / 1000) % 60, mmm = ms % 1000;
  return `${hh ? hh + ":" : ""}${String(mm).padStart(2, "0")}:${String(ss).padStart(2, "0")}.${String(mmm).padStart(3, "0")}`;
};
const usd = (v) => (v === null || v === undefined) ? "–" : "$" + Number(v).toFixed(6);

// --- pages ----------------------------------------------------------------------------------
function route() {
  stopTimers();
  if (state.audioUrl) { URL.revokeObjectURL(state.audioUrl); state.audioUrl = null; }
  const m = location.hash.match(/^#\/job\/([0-9a-f]{32})/);
  const app = $("#app");
  app.replaceChildren(h("p", { id: "errors", class: "error" }));
  if (m) jobPage(app, m[1]); else listPage(app);
}

function listPage(app) {
  const urlIn = h("input", { type: "url", name: "url", placeholder: "https://… (a page yt-dlp understands or a media file)" });
  const fileIn = h("input", { type: "file", name: "file", accept: "audio/*,video/*" });
  const status = h("span", { class: "muted", id: "submit-status" });
  const form = h("form", { class: "submit", id: "submit-form", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      status.textContent = "submitting…";
      const job = fileIn.files.length ? await submitFile(fileIn.files[0]) : await getJSON("/v1/transcriptions", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ url: urlIn.value.trim() }) });
      location.hash = `#/job/${job.job_id}`;
    } catch (e) { status.textContent = ""; showError(e); }
  } }, urlIn, h("button", { type: "submit" }, "Transcribe"), fileIn, status);
  const tbody = h("tbody", { id: "jobs" });
  app.append(
    h("section", { class: "card" }, h("h2", {}, "New transcription"), form,
      h("p", { class: "muted" }, "A URL, or pick a file (it goes through the same upload path as the CLI).")),
    h("section", { class: "card" }, h("h2", {}, "Jobs"),
      h("table", {}, h("thead", {}, h("tr", {}, ["Job", "Status", "Progress", "Created", "Source", "Cost"].map((t) => h("th", {}, t)))), tbody)));
  every(2000, async () => {
    const page = await getJSON("/v1/transcriptions?limit=50");
    tbody.replaceChildren(...page.items.map((j) => h("tr", { "data-job": j.job_id },
      h("td", {}, h("a", { href: `#/job/${j.job_id}` }, j.job_id.slice(0, 12))),
      h("td", {}, h("span", { class: `badge ${j.status}` }, j.status)),
      h("td", {}, `${j.progress}%`),
      h("td", {}, j.created_at.replace("T", " ").slice(0, 19)),
      h("td", { class: "src", title: j.source.url || j.source.filename || "" }, j.source.url || j.source.filename || ""),
      h("td", {}, j.cost ? usd(j.cost.total_usd) : "–"))));
    if (!page.items.length) tbody.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No jobs yet.")));
  });
}

async function submitFile(file) {
  const job = await getJSON("/v1/uploads", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ filename: file.name, content_type: file.type || "application/octet-stream", size_bytes: file.size }) });
  await api(`/console/api/upload/${job.job_id}`, { method: "PUT", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file });
  return job;
}

function jobPage(app, id) {
  const head = h("section", { class: "card", id: "job-head" }, h("h2", {}, `Job ${id}`));
  const graph = h("section", { class: "card" }, h("h2", {}, "State machine"), legend(), h("div", { id: "graph" }));
  const timeline = h("section", { class: "card timeline" }, h("h2", {}, "Stage timeline"), h("div", { id: "timeline" }));
  const chunks = h("section", { class: "card" }, h("h2", {}, "Chunks"), h("div", { id: "chunks", class: "chunks" }),
    h("p", { class: "muted legend" }, chip("done", "#1d8102"), chip("re-decoded", "#e07700"), chip("failed", "#d91515"), chip("pending", "#8d99a8")));
  const captions = h("section", { class: "card", id: "captions" }, h("h2", {}, "Captions"), h("p", { class: "muted" }, "Shown when the job completes."));
  app.append(h("p", {}, h("a", { href: "#/" }, "← all jobs")), head, h("div", { class: "row" }, graph, h("div", {}, timeline, chunks)), captions);
  let job = null, captionsShown = false, executionDone = false;
  every(1000, async () => {
    job = await getJSON(`/v1/transcriptions/${id}`);
    renderHead(head, job);
    renderTimeline($("#timeline"), job);
    if (job.status === "COMPLETED" && !captionsShown) { captionsShown = true; await renderCaptions(captions, job); }
    return !(TERMINAL.has(job.status) && executionDone);
  });
  every(1500, async () => {
    if (!state.asl) state.asl = await getJSON("/console/api/asl");
    const ex = await getJSON(`/console/api/jobs/${id}/execution`);
    $("#graph").replaceChildren(drawGraph(state.asl, ex.states || {}));
    $("#graph").dataset.execution = ex.status || "";
    executionDone = ex.status !== null && ex.status !== "RUNNING";
    return !(executionDone && job && TERMINAL.has(job.status));
  });
  every(2000, async () => {
    const doc = await getJSON(`/console/api/jobs/${id}/chunks`);
    $("#chunks").replaceChildren(...doc.chunks.map((c) => h("div", { class: c.state, "data-index": c.index,
      title: `chunk ${c.index} · shard ${c.shard} · ${fmtTime(c.start)}–${fmtTime(c.end)} · ${c.state}` })));
    return !(job && TERMINAL.has(job.status) && doc.chunks.length);
  });
}

const chip = (label, colour) => h("span", {}, h("i", { style: `background:${colour}` }), label);
const legend = () => h("p", { class: "legend" }, chip("succeeded", FILL.succeeded), chip("in progress", FILL.running),
  chip("failed", FILL.failed), chip("caught error", FILL.caught), chip("not run", FILL.none));

function renderHead(el, job) {
  const err = job.error ? h("p", { class: "error" }, `${job.error.code}: ${job.error.message}`) : null;
  const c = job.cost;
  el.replaceChildren(...[h("h2", {}, `Job ${job.job_id} `, h("span", { class: `badge ${job.status}`, id: "job-status" }, job.status)), err,
    h("dl", { class: "kv" },
      h("dt", {}, "Source"), h("dd", {}, job.source.url || job.source.filename || ""),
      h("dt", {}, "Progress"), h("dd", {}, `${job.progress}%  (${job.chunks.done}/${job.chunks.total} chunks, ${job.chunks.shards} shards)`),
      h("dt", {}, "Model"), h("dd", {}, `${job.options.model}, language ${job.language || job.options.language}`),
      h("dt", {}, "Media"), h("dd", {}, job.media && job.media.duration_s ? `${job.media.duration_s.toFixed(1)} s` : "–"),
      h("dt", {}, "Cost"), h("dd", { id: "job-cost" }, c ? `${usd(c.total_usd)} (GPU ${usd(c.batch_gpu_usd)}, Lambda ${usd(c.lambda_usd)}, Step Functions ${usd(c.step_functions_usd)}, S3 ${usd(c.s3_usd)}, DynamoDB ${usd(c.dynamodb_usd)})` : "recorded when the job ends"))].filter(Boolean));
}

function renderTimeline(el, job) {
  const t0 = Date.parse(job.created_at);
  const end = job.completed_at ? Date.parse(job.completed_at) : Date.now();
  const span = Math.max(1, end - t0);
  const rows = [["queued", job.created_at, (Object.values(job.timings)[0] || {}).started_at || job.completed_at, true]];
  for (const [stage, t] of Object.entries(job.timings)) rows.push([stage, t.started_at, t.ended_at, t.ended_at !== null && t.ended_at !== undefined]);
  el.replaceChildren(...rows.filter((r) => r[1]).map(([name, a, b, done]) => {
    const s = Date.parse(a) - t0, e = (b ? Date.parse(b) : Date.now()) - t0;
    const secs = ((e - s) / 1000).toFixed(2);
    return h("div", { class: "bar", "data-stage": name }, h("b", { class: done ? "done" : "",
      style: `left:${(100 * s / span).toFixed(2)}%;width:${Math.max(0.5, 100 * (e - s) / span).toFixed(2)}%` }),
      h("span", {}, `${name} ${secs} s`));
  }));
  if (job.usage && job.usage.queue_wait_s !== null && job.usage.queue_wait_s !== undefined)
    el.append(h("p", { class: "muted" }, `Batch queue wait (longest shard): ${job.usage.queue_wait_s.toFixed(2)} s · GPU ${job.usage.batch_gpu_s.toFixed(2)} s over ${job.usage.batch_attempts} attempts`));
}

// --- the state machine, drawn from its ASL, coloured from the execution's history --------------
function edgesOf(st) {
  const out = [];
  if (st.Next) out.push([st.Next, false]);
  if (st.Default) out.push([st.Default, false]);
  for (const c of st.Choices || []) out.push([c.Next, false]);
  for (const c of st.Catch || []) out.push([c.Next, true]);
  return out;
}

function drawGraph(asl, status) {
  const names = Object.keys(asl.States);
  const depth = Object.fromEntries(names.map((n) => [n, -1]));
  depth[asl.StartAt] = 0;
  for (let i = 0; i < names.length; i++) {  // longest path from the start (the ASL has no cycles)
    for (const n of names) if (depth[n] >= 0) for (const [to] of edgesOf(asl.States[n])) depth[to] = Math.max(depth[to], depth[n] + 1);
  }
  const rows = [];
  for (const n of names) { const d = Math.max(0, depth[n]); (rows[d] = rows[d] || []).push(n); }
  const W = 170, H = 34, GX = 24, GY = 30, inner = (n) => asl.States[n].Type === "Map" ? Object.keys(asl.States[n].ItemProcessor.States) : [];
  const pos = {};
  let y = 16;
  const width = Math.max(...rows.map((r) => (r || []).length)) * (W + GX) + GX;
  rows.forEach((row) => {
    row = row || [];
    const rowW = row.length * (W + GX) - GX;
    const tall = row.some((n) => inner(n).length) ? H + 18 + inner(row.find((n) => inner(n).length)).length * (H + 6) : H;
    row.forEach((n, i) => { pos[n] = { x: (width - rowW) / 2 + i * (W + GX), y, h: inner(n).length ? tall : H }; });
    y += tall + GY;
  });
  const svg = h("svg", { class: "graph", viewBox: `0 0 ${width} ${y}`, width, height: y, "data-testid": "graph" },
    h("defs", {}, h("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      h("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8d99a8" }))));
  for (const n of names) for (const [to, isCatch] of edgesOf(asl.States[n])) {
    const a = pos[n], b = pos[to];
    if (!a || !b) continue;
    const x1 = a.x + W / 2, y1 = a.y + a.h, x2 = b.x + W / 2, y2 = b.y;
    const d = y2 > y1 ? `M ${x1} ${y1} C ${x1} ${(y1 + y2) / 2}, ${x2} ${(y1 + y2) / 2}, ${x2} ${y2}`
      : `M ${a.x + W} ${a.y + a.h / 2} C ${a.x + W + 40} ${a.y}, ${b.x + W + 40} ${b.y + b.h}, ${b.x + W} ${b.y + b.h / 2}`;
    svg.append(h("path", { class: `edge${isCatch ? " catch" : ""}`, d, "marker-end": "url(#arrow)" }));
  }
  const box = (name, st, x, yy, hh, w) => {
    const s = status[name] || "none";
    const label = st.Type === "Task" || st.Type === "Map" ? name : `${name} · ${st.Type}`;
    return h("g", {}, h("rect", { class: "state", x, y: yy, width: w, height: hh, fill: FILL[s], "data-state": name, "data-status": s },
      h("title", {}, `${name} (${st.Type}): ${st.Comment || ""}`)),
    h("text", { x: x + w / 2, y: yy + (st.Type === "Map" ? 16 : H / 2 + 4), "text-anchor": "middle" }, label));
  };
  for (const n of names) {
    const p = pos[n], st = asl.States[n];
    svg.append(box(n, st, p.x, p.y, p.h, W));
    inner(n).forEach((child, i) => {
      svg.append(box(child, st.ItemProcessor.States[child], p.x + 10, p.y + 26 + i * (H + 6), H, W - 20));
    });
  }
  return svg;
}

// --- captions beside the audio ----------------------------------------------------------------
async function renderCaptions(el, job) {
  const doc = await getJSON(`/v1/transcriptions/${job.job_id}/result?format=json`);
  const audio = h("audio", { controls: true, id: "audio", preload: "auto" });
  try {
    const blob = await (await api(`/console/api/jobs/${job.job_id}/audio`)).blob();
    state.audioUrl = URL.createObjectURL(blob);
    audio.src = state.audioUrl;
  } catch (e) { showError(e); }
  const cues = doc.segments.map((s, i) => h("div", { class: "cue", "data-start": s.start, "data-end": s.end, "data-index": i,
    onclick: () => { audio.currentTime = s.start + 0.001; audio.play().catch(() => {}); } },
    h("time", {}, `${fmtTime(s.start)} → ${fmtTime(s.end)}`), s.text.trim()));
  const list = h("div", { class: "cues", id: "cues" }, ...cues);
  const highlight = () => {
    const t = audio.currentTime;
    for (const c of cues) {
      const on = t >= Number(c.dataset.start) && t < Number(c.dataset.end);
      if (on && !c.classList.contains("active")) c.scrollIntoView({ block: "nearest" });
      c.classList.toggle("active", on);
    }
  };
  audio.addEventListener("timeupdate", highlight);
  audio.addEventListener("seeked", highlight);
  const downloads = h("p", { class: "downloads" }, ...Object.keys(job.results).map((fmt) => h("button", { type: "button", "data-format": fmt,
    onclick: async () => {
      const blob = await (await api(`/v1/transcriptions/${job.job_id}/result?format=${fmt}`)).blob();
      const a = h("a", { href: URL.createObjectURL(blob), download: `${job.job_id}.${fmt}` });
      document.body.append(a); a.click(); a.remove();
    } }, `Download ${fmt.toUpperCase()}`)));
  el.replaceChildren(h("h2", {}, `Captions (${doc.language || job.language || "?"})`), downloads, h("div", { class: "player" }, audio, list));
}

// --- start ----------------------------------------------------------------------------------
function init() {
  const m = location.hash.match(/key=([^&]+)/);
  if (m) {
    state.key = decodeURIComponent(m[1]);
    sessionStorage.setItem("ytc-key", state.key);
    history.replaceState(null, "", location.pathname + "#/");
  }
  $("#api-key").value = state.key;
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.key = $("#api-key").value.trim();
    sessionStorage.setItem("ytc-key", state.key);
    route();
  });
  window.addEventListener("hashchange", route);
  route();
}
init();
