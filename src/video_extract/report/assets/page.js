"use strict";
// Draws report.html from its JSON block. Text from the media (transcripts, on-screen text) is
// untrusted: it reaches the page only through textContent and canvas fillText, never as HTML.
(function () {
  const started = performance.now();
  const data = JSON.parse(document.getElementById("ve-data").textContent);
  const media = JSON.parse(document.getElementById("ve-media").textContent);
  const duration = Math.max(data.duration || 0, 0.001);
  const PALETTE = ["#2e90fa", "#f79009", "#12b76a", "#9e77ed", "#f04438", "#0ba5ec", "#ee46bc", "#669f2a", "#6172f3", "#e04f16"];
  const LANE_HEIGHT = { scenes: 54, transcript: 30 };
  const speakerColour = {};
  data.speakers.forEach((s, i) => { speakerColour[s] = PALETTE[i % PALETTE.length]; });

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clock(t) {
    t = Math.max(0, t || 0);
    const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
    const ss = s.toFixed(1).padStart(4, "0");
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + ss;
  }

  function hue(label) {
    let h = 0;
    for (let i = 0; i < label.length; i++) h = (h * 31 + label.charCodeAt(i)) >>> 0;
    return "hsl(" + (h % 360) + ", 62%, 52%)";
  }

  // ---- header ------------------------------------------------------------------------------
  const title = media.title || data.title; // the file this copy of the page was published for
  document.title = title;
  document.getElementById("title").textContent = title;
  // the speakers lane holds turns: the header counts the people (distinct labels)
  const count = (l) => (l.id === "speakers" ? new Set(l.events.map((e) => e[2])).size : l.events.length);
  const counts = data.lanes.map((l) => l.name + ": " + count(l)).join(" · ");
  document.getElementById("facts").textContent = clock(duration) + " · " + counts;

  // ---- player ------------------------------------------------------------------------------
  const slot = document.getElementById("player-slot");
  let player = null;
  if (media && media.src) {
    if (data.kind === "image") slot.appendChild(el("img", { id: "picture", src: media.src, alt: title }));
    else {
      player = el(data.kind === "audio" ? "audio" : "video", { id: "player", controls: "", preload: "metadata", src: media.src });
      slot.appendChild(player);
    }
  } else {
    slot.appendChild(el("div", { class: "no-media" }, "The source is not linked (it was not a local file or an http(s) URL)."));
  }
  let cursor = 0; // the time shown when there is no player
  function now() { return player ? player.currentTime : cursor; }
  function seek(t) {
    t = Math.min(Math.max(0, t), duration);
    cursor = t;
    if (player) player.currentTime = t;
    update();
  }
  const clockNode = document.getElementById("clock");

  // ---- transcript --------------------------------------------------------------------------
  const legend = document.getElementById("legend");
  data.speakers.forEach((s) => {
    const item = el("span", { style: "--c:" + speakerColour[s] }, s);
    legend.appendChild(item);
  });
  const list = document.getElementById("transcript");
  const rows = [];
  const fragment = document.createDocumentFragment();
  data.transcript.forEach((seg, i) => {
    const [start, end, speaker, text] = seg;
    const row = el("div", { class: "seg", role: "listitem", "data-start": start });
    if (speaker) row.style.borderLeftColor = speakerColour[speaker] || "#98a2b3";
    row.appendChild(el("time", {}, clock(start)));
    const body = el("div");
    if (speaker) {
      const who = el("span", { class: "who" }, speaker);
      who.style.color = speakerColour[speaker] || "#475467";
      body.appendChild(who);
    }
    body.appendChild(el("span", { class: "text" }, text.trim()));
    row.appendChild(body);
    row.addEventListener("click", () => seek(start + 0.001));
    rows.push(row);
    fragment.appendChild(row);
  });
  if (!data.transcript.length) fragment.appendChild(el("div", { class: "empty" }, "No transcript in this output."));
  list.appendChild(fragment);
  let currentRow = -1;
  function markTranscript(t) {
    // last segment that started at or before t (segments are in time order)
    let lo = 0, hi = data.transcript.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (data.transcript[mid][0] <= t) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (found >= 0 && t > data.transcript[found][1]) found = -1;
    if (found === currentRow) return;
    if (currentRow >= 0) rows[currentRow].classList.remove("current");
    currentRow = found;
    if (found >= 0) {
      rows[found].classList.add("current");
      const top = rows[found].offsetTop - list.offsetTop;
      if (top < list.scrollTop || top > list.scrollTop + list.clientHeight - 30) list.scrollTop = top - 40;
    }
  }

  // ---- lanes on one time axis ---------------------------------------------------------------
  const view = { t0: 0, t1: duration };
  const lanesNode = document.getElementById("lanes");
  const canvases = [];
  const thumbs = {};
  function thumb(scene) {
    const uri = data.thumbnails[String(scene)];
    if (!uri) return null;
    if (!thumbs[scene]) {
      const img = new Image();
      img.onload = schedule;
      img.src = uri;
      thumbs[scene] = img;
    }
    return thumbs[scene].complete && thumbs[scene].naturalWidth ? thumbs[scene] : null;
  }

  function addLane(lane) {
    const row = el("div", { class: "lane" + (lane ? "" : " axis"), "data-lane": lane ? lane.id : "axis", "data-count": lane ? lane.events.length : 0 });
    const name = el("div", { class: "name" });
    if (lane) {
      name.appendChild(el("span", {}, lane.name));
      name.appendChild(el("small", {}, lane.events.length + (lane.events.length === 1 ? " event" : " events")));
    }
    row.appendChild(name);
    // Each lane keeps its events sorted by start and the longest one, to find the visible ones fast.
    const events = lane ? lane.events : [];
    let longest = 0;
    for (const e of events) longest = Math.max(longest, e[1] - e[0]);
    const rowsOf = lane ? pack(lane, events) : [];
    const count = rowsOf.reduce((most, r) => Math.max(most, r + 1), 1);
    const height = lane ? (LANE_HEIGHT[lane.id] || 8 + 18 * count) : 22;
    const canvas = el("canvas", { height: String(height) });
    canvas.style.height = height + "px";
    row.appendChild(canvas);
    lanesNode.appendChild(row);
    canvases.push({ lane, canvas, events, longest, rowsOf, count });
  }

  // Events that overlap in time go on rows of their own (a person and a car at once): each
  // event takes the first row free at its start, at most MAX_ROWS rows (then they overlap).
  const MAX_ROWS = 5;
  function pack(lane, events) {
    if (LANE_HEIGHT[lane.id]) return events.map(() => 0);
    const ends = [];
    return events.map((e) => {
      let row = ends.findIndex((end) => end <= e[0] + 1e-6);
      if (row < 0 && ends.length < MAX_ROWS) row = ends.push(0) - 1;
      if (row < 0) row = ends.indexOf(Math.min(...ends));
      ends[row] = Math.max(ends[row], e[1]);
      return row;
    });
  }
  addLane(null);
  data.lanes.forEach(addLane);

  function firstVisible(events, t) {
    let lo = 0, hi = events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (events[mid][0] < t) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function colour(lane, event) {
    if (lane.id === "speakers") return speakerColour[event[2]] || hue(event[2]);
    if (lane.id === "scenes") return "#475467";
    if (lane.id === "transcript") return speakerColour[event[3]] || "#98a2b3";
    return hue(event[2]);
  }

  function tickStep(span, width) {
    const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
    const want = span / Math.max(1, width / 90);
    return steps.find((s) => s >= want) || 7200;
  }

  function draw() {
    pending = false;
    const t = now();
    const span = view.t1 - view.t0;
    for (const item of canvases) {
      const { lane, canvas, events, longest, rowsOf, count } = item;
      const ratio = window.devicePixelRatio || 1;
      const width = canvas.clientWidth, height = canvas.clientHeight;
      if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
      if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
      const ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const x = (time) => ((time - view.t0) / span) * width;
      if (!lane) {
        const step = tickStep(span, width);
        ctx.fillStyle = "#667085";
        ctx.font = "11px system-ui, sans-serif";
        for (let s = Math.ceil(view.t0 / step) * step; s <= view.t1; s += step) {
          const px = x(s);
          ctx.fillRect(px, height - 6, 1, 6);
          ctx.fillText(clock(s).replace(/\.0$/, ""), px + 3, height - 8);
        }
      } else {
        let i = firstVisible(events, view.t0 - longest);
        let lastRight = -1;
        for (; i < events.length && events[i][0] <= view.t1; i++) {
          const [start, end, label] = events[i];
          if (end < view.t0) continue;
          const left = x(start), right = Math.max(x(end), left + 1);
          if (right <= lastRight && right - left < 1) continue; // sub-pixel events on one pixel: drawn once
          lastRight = right;
          ctx.fillStyle = colour(lane, events[i]);
          ctx.globalAlpha = lane.id === "scenes" ? (i % 2 ? 0.75 : 0.95) : lane.id === "transcript" ? 0.6 : 0.85;
          const rowHeight = (height - 6) / count, top = 3 + rowsOf[i] * rowHeight;
          ctx.fillRect(left, top, right - left, rowHeight - (count > 1 ? 2 : 0));
          ctx.globalAlpha = 1;
          if (lane.id === "scenes" && right - left > 30) {
            const img = thumb(i);
            if (img) {
              const h = height - 8, w = Math.min(h * (img.naturalWidth / img.naturalHeight), right - left - 4);
              ctx.drawImage(img, left + 2, 4, w, h);
            }
          }
          if (right - left > 40) {
            ctx.save();
            ctx.beginPath();
            ctx.rect(left, top, right - left - 2, rowHeight);
            ctx.clip();
            ctx.fillStyle = "#fff";
            ctx.font = "11px system-ui, sans-serif";
            const textX = lane.id === "scenes" && thumb(i) ? left + 4 + (height - 8) * 1.8 : left + 4;
            ctx.fillText(label, textX, top + rowHeight / 2 + 4);
            ctx.restore();
          }
        }
      }
      const px = x(t);
      ctx.fillStyle = "#d92d20";
      ctx.fillRect(px - 1, 0, 2, height);
    }
    clockNode.textContent = clock(t) + " / " + clock(duration);
    clockNode.setAttribute("data-time", t.toFixed(3));
    markTranscript(t);
  }
  let pending = false;
  function schedule() {
    if (!pending) { pending = true; requestAnimationFrame(draw); }
  }
  function update() { schedule(); }

  function timeAt(canvas, clientX) {
    const box = canvas.getBoundingClientRect();
    return view.t0 + ((clientX - box.left) / box.width) * (view.t1 - view.t0);
  }
  function hit(item, time, clientY) {
    const pad = ((view.t1 - view.t0) / item.canvas.clientWidth) * 2; // two pixels
    const box = item.canvas.getBoundingClientRect();
    const row = Math.floor(((clientY - box.top - 3) / (box.height - 6)) * item.count);
    let found = null;
    for (let i = firstVisible(item.events, time - item.longest - pad); i < item.events.length && item.events[i][0] <= time + pad; i++) {
      const e = item.events[i];
      if (e[1] + pad >= time && (item.count === 1 || item.rowsOf[i] === row)) found = e;
    }
    return found;
  }
  function zoom(factor, around) {
    const span = Math.min(duration, Math.max(0.5, (view.t1 - view.t0) * factor));
    const centre = around === undefined ? (view.t0 + view.t1) / 2 : around;
    const share = (centre - view.t0) / (view.t1 - view.t0);
    view.t0 = Math.max(0, Math.min(duration - span, centre - share * span));
    view.t1 = view.t0 + span;
    schedule();
  }
  const tooltip = document.getElementById("tooltip");
  let drag = null;
  for (const item of canvases) {
    const canvas = item.canvas;
    canvas.addEventListener("wheel", (ev) => { ev.preventDefault(); zoom(ev.deltaY > 0 ? 1.25 : 0.8, timeAt(canvas, ev.clientX)); }, { passive: false });
    canvas.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, t0: view.t0, moved: false, item }; });
    canvas.addEventListener("mousemove", (ev) => {
      const time = timeAt(canvas, ev.clientX);
      const e = item.lane ? hit(item, time, ev.clientY) : null;
      if (e) {
        tooltip.hidden = false;
        tooltip.textContent = clock(e[0]) + "–" + clock(e[1]) + "  " + (e[3] ? e[3] + ": " : "") + e[2];
        tooltip.style.left = ev.clientX + 12 + "px";
        tooltip.style.top = ev.clientY + 14 + "px";
      } else tooltip.hidden = true;
    });
    canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  }
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x;
    if (Math.abs(dx) > 3) drag.moved = true;
    if (!drag.moved) return;
    const span = view.t1 - view.t0;
    const shift = (dx / drag.item.canvas.clientWidth) * span;
    view.t0 = Math.max(0, Math.min(duration - span, drag.t0 - shift));
    view.t1 = view.t0 + span;
    schedule();
  });
  window.addEventListener("mouseup", (ev) => {
    if (drag && !drag.moved) {
      const time = timeAt(drag.item.canvas, ev.clientX);
      const e = drag.item.lane ? hit(drag.item, time, ev.clientY) : null;
      seek(e ? e[0] : time); // click-to-seek: an event's start, or the time under the pointer
    }
    drag = null;
  });
  document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5, now()));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(2, now()));
  document.getElementById("zoom-fit").addEventListener("click", () => { view.t0 = 0; view.t1 = duration; schedule(); });
  window.addEventListener("resize", schedule);
  if (player) {
    player.addEventListener("timeupdate", schedule);
    player.addEventListener("seeked", schedule);
  }

  // ---- entities and relationships ------------------------------------------------------------
  function seekLink(t) {
    const a = el("a", { class: "seek", href: "#t=" + t }, clock(t));
    a.addEventListener("click", (ev) => { ev.preventDefault(); seek(t); });
    return a;
  }
  // Long tables grow on demand: a one-hour input can link thousands of pairs, and rows nobody
  // scrolls to should not cost the page's first paint.
  const PAGE_ROWS = 200;
  function table(columns, items, cells, id) {
    const wrap = el("div");
    const box = el("div", { class: "scroll" });
    const tab = el("table", { id, "data-rows": items.length });
    const head = el("tr");
    columns.forEach((c) => head.appendChild(el("th", {}, c)));
    tab.appendChild(el("thead")).appendChild(head);
    const body = el("tbody");
    tab.appendChild(body);
    box.appendChild(tab);
    wrap.appendChild(box);
    const more = el("button", { type: "button", class: "more" });
    let shown = 0;
    function grow() {
      const frag = document.createDocumentFragment();
      for (const item of items.slice(shown, shown + PAGE_ROWS)) {
        const tr = el("tr");
        for (const cell of cells(item)) {
          const td = el("td");
          if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === undefined || cell === null ? "" : String(cell);
          tr.appendChild(td);
        }
        frag.appendChild(tr);
      }
      body.appendChild(frag);
      shown = Math.min(items.length, shown + PAGE_ROWS);
      more.hidden = shown >= items.length;
      more.textContent = "Show " + Math.min(PAGE_ROWS, items.length - shown) + " more (" + shown + " of " + items.length + " shown)";
    }
    more.addEventListener("click", grow);
    wrap.appendChild(more);
    grow();
    return wrap;
  }
  const entityById = {};
  (data.entities || []).forEach((e) => { entityById[e.id] = e; });
  const entitiesNode = document.getElementById("entities");
  if (data.entities === null) entitiesNode.appendChild(el("div", { class: "empty" }, "fusion.json has no entities (fusion:extract_entities=false)."));
  else if (!data.entities.length) entitiesNode.appendChild(el("div", { class: "empty" }, "No entities."));
  else {
    entitiesNode.appendChild(table(["Kind", "Entity", "Time", "Spans", "First", "From", "Score"], data.entities, (e) => {
      const kind = el("span", { class: "kind" }, e.kind);
      if (e.kind === "speaker" && speakerColour[e.label]) { kind.style.background = speakerColour[e.label]; kind.style.color = "#fff"; }
      const score = e.score !== undefined ? e.score : e.confidence;
      let label = e.label;
      if (e.crop) { // a track's representative crop, a file beside the page: shown when it is there
        label = el("span", { class: "entity" });
        const img = el("img", { class: "crop", src: e.crop, alt: "", loading: "lazy" });
        img.addEventListener("error", () => img.remove());
        label.appendChild(img);
        label.appendChild(document.createTextNode(e.label));
      }
      return [kind, label, clock(e.seconds) + (e.turns ? " (" + e.turns + (e.turns === 1 ? " turn)" : " turns)") : ""), e.spans.length, e.spans.length ? seekLink(e.spans[0][0]) : "", e.evidence.join(", "), score === undefined ? "" : score.toFixed(2)];
    }, "entity-table"));
  }
  const relNode = document.getElementById("relationships");
  const name = (id) => (entityById[id] ? entityById[id].label + " (" + entityById[id].kind + ")" : id.startsWith("scene:") ? "Scene " + (Number(id.slice(6)) + 1) : id);
  if (data.relationships === null) relNode.appendChild(el("div", { class: "empty" }, "fusion.json has no relationships (fusion:build_relationships=false)."));
  else if (!data.relationships.length) relNode.appendChild(el("div", { class: "empty" }, "No relationships."));
  else {
    relNode.appendChild(table(["Type", "From", "To", "Score", "Spans", "First"], data.relationships, (r) => [
      el("span", { class: "kind" }, r.type), name(r.source), name(r.target), r.score.toFixed(2), r.spans.length, r.spans.length ? seekLink(r.spans[0][0]) : "",
    ], "relationship-table"));
  }

  // A link to a moment (report.html#t=75.5) opens there.
  function fromHash() {
    const m = /^#t=([0-9.]+)$/.exec(location.hash);
    if (m) seek(parseFloat(m[1]));
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
  draw();
  document.body.setAttribute("data-rendered", String(canvases.length - 1));
  document.body.setAttribute("data-render-ms", (performance.now() - started).toFixed(1)); // measured by the benchmark
})();
