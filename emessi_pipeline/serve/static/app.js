// The workbench's behaviour: playback that the transcript follows, keys, and saving. Changes the
// database cannot take yet (held by an ingest) wait in this browser's storage and are sent again
// until they land, in the order they were made.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const statusBox = $("#status");

function say(text, kind = "info") {
  statusBox.textContent = text;
  statusBox.className = kind;
  if (kind === "info") setTimeout(() => { if (statusBox.textContent === text) statusBox.textContent = ""; }, 2500);
}

function coder() { return document.body.dataset.coder; }

function chooseCoder() {
  const name = (prompt("Your coder name (codings are saved under it):", coder() || "") || "").trim();
  if (!name) return false;
  document.cookie = "emessi_coder=" + encodeURIComponent(name) + "; path=/; SameSite=Strict; max-age=31536000";
  document.body.dataset.coder = name;
  $("#coder-name").textContent = name;
  return true;
}
const chooser = $("#choose-coder");
if (chooser) chooser.addEventListener("click", () => { if (chooseCoder()) location.reload(); });

// ---------------------------------------------------------------- saving, with a queue
const QUEUE = "emessi-pending";
let sending = false;
function pending() { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); }
function setPending(list) { localStorage.setItem(QUEUE, JSON.stringify(list)); }

async function post(url, body) {
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                                      body: JSON.stringify(body), credentials: "same-origin" });
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: "the workbench answered " + response.status }; }
  return { status: response.status, data };
}

// A write goes through the queue: it waits behind earlier ones, so the order is kept.
function save(url, body, onDone) {
  const list = pending();
  list.push({ url, body });
  setPending(list);
  callbacks.push(onDone);
  flush();
}
const callbacks = [];

async function flush() {
  if (sending) return;
  sending = true;
  try {
    while (pending().length) {
      const [item] = pending();
      let result;
      try { result = await post(item.url, item.body); }
      catch (e) { result = { status: 0, data: { busy: "the workbench does not answer (stopped?)" } }; }
      if (result.status === 503 || result.status === 0) {
        say(`Database busy: ${pending().length} change(s) waiting, saved as soon as it is free. (${result.data.busy})`, "busy");
        setTimeout(flush, 2000);
        return;
      }
      setPending(pending().slice(1));
      const done = callbacks.shift();
      if (result.status !== 200) say(result.data.error || "not saved", "error");
      else if (statusBox.className === "busy") say("saved");
      if (done) done(result);
    }
  } finally { sending = false; }
}
window.addEventListener("load", flush);

// ---------------------------------------------------------------- the recording page
const transcript = $("#transcript");
if (transcript) recordingPage();

function recordingPage() {
  const media = $("#media");
  const rows = $$(".row", transcript);
  const starts = rows.map(r => parseFloat(r.dataset.start));
  const book = JSON.parse($("#codebook").textContent);
  let current = -1, dim = 0, editing = null;

  function indexAt(t) {  // the last row starting at or before t
    let lo = 0, hi = starts.length - 1, found = -1;
    while (lo <= hi) { const mid = (lo + hi) >> 1; if (starts[mid] <= t) { found = mid; lo = mid + 1; } else hi = mid - 1; }
    return found;
  }
  function select(i, follow = true) {
    if (i < 0 || i >= rows.length || i === current) return;
    if (current >= 0) rows[current].classList.remove("current");
    current = i;
    rows[i].classList.add("current");
    if (follow) rows[i].scrollIntoView({ block: "center" });
  }
  function playFrom(i) {
    select(i);
    if (!media) return;
    media.currentTime = starts[i] + 0.01;
    media.play().catch(e => say("could not play: " + e.message, "error"));
  }
  if (media) {
    media.addEventListener("timeupdate", () => select(indexAt(media.currentTime)));
    media.addEventListener("error", () => say("The media file could not be played: " + (media.error && media.error.message || "unknown error"), "error"));
  }
  rows.forEach((row, i) => row.addEventListener("click", e => { if (!editing) playFrom(i); }));

  function showDimension() {
    if (!book.length) { $("#dimension-name").textContent = "no codebook yet (emessi codebook import FILE)"; return; }
    const d = book[dim];
    $("#dimension-name").textContent = d.label + (d.multiple ? " (several codes)" : " (one code)");
    $("#code-keys").innerHTML = "";
    for (const c of d.codes) {
      const li = document.createElement("li");
      li.innerHTML = "<kbd></kbd> ";
      li.firstChild.textContent = c.key;
      li.append(c.label);
      $("#code-keys").append(li);
    }
  }
  showDimension();

  function cell(row, dimension) { return $(`.cell[data-dim="${dimension}"]`, row); }
  function showCodes(row, dimension, codes) {
    const c = cell(row, dimension);
    c.dataset.codes = codes.join(";");
    c.textContent = codes.join(", ");
  }
  function applyKey(key) {
    const d = book[dim];
    const code = d && d.codes.find(c => c.key === key);
    if (!code) { say(`no code on key ${key} in ${d ? d.label : "the codebook"}`, "error"); return; }
    if (current < 0) { say("choose a row first (click it, or j)", "error"); return; }
    if (!coder() && !chooseCoder()) return;
    const row = rows[current];
    const before = cell(row, d.dimension).dataset.codes.split(";").filter(Boolean);
    let codes;
    if (d.multiple) codes = before.includes(code.code) ? before.filter(c => c !== code.code) : [...before, code.code].sort();
    else codes = before.length === 1 && before[0] === code.code ? [] : [code.code];
    showCodes(row, d.dimension, codes);
    row.classList.add("saving");
    save("/api/code", { observation_id: row.dataset.id, dimension: d.dimension, codes, expected: before }, r => {
      row.classList.remove("saving");
      if (r.status !== 200) { showCodes(row, d.dimension, before); return; }
      showCodes(row, d.dimension, r.data.codes);
      if (r.data.overwrote) say(`note: this row's ${d.dimension} had been changed elsewhere to "${r.data.overwrote.join(", ")}"; both are in the history, yours is current`, "error");
    });
  }
  function edit() {
    if (current < 0) { say("choose a row first", "error"); return; }
    if (!coder() && !chooseCoder()) return;
    const row = rows[current], span = $(".text", row), before = span.textContent;
    const input = document.createElement("textarea");
    input.value = before;
    input.className = "editor";
    span.replaceWith(input);
    input.focus();
    editing = input;
    const finish = (text) => {
      editing = null;
      span.textContent = text;
      input.replaceWith(span);
    };
    input.addEventListener("keydown", e => {
      e.stopPropagation();
      if (e.key === "Escape") finish(before);
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        const text = input.value;
        finish(text);
        save("/api/text", { observation_id: row.dataset.id, text }, r => {
          if (r.status !== 200) { span.textContent = before; return; }
          span.textContent = r.data.text;
          span.classList.toggle("corrected", true);
          say("text saved");
        });
      }
    });
  }
  function undo() {
    if (!coder()) { say("no coder chosen: nothing to undo", "error"); return; }
    save("/api/undo", {}, r => {
      if (r.status !== 200) return;
      if (["assign", "merge"].includes(r.data.undone)) { say("undone"); location.reload(); return; }
      const row = $("#o-" + r.data.observation_id);
      if (!row) return;
      if (r.data.undone === "code") showCodes(row, r.data.dimension, r.data.codes);
      else if (r.data.undone !== "text") { location.reload(); return; }
      else $(".text", row).textContent = r.data.text;
      say("undone");
    });
  }
  document.addEventListener("keydown", e => {
    if (editing || e.target.matches("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === " ") { e.preventDefault(); if (media) { if (media.paused) { if (current >= 0 && indexAt(media.currentTime) !== current) media.currentTime = starts[current] + 0.01; media.play(); } else media.pause(); } }
    else if (e.key === "j") playOrSelect(current + 1);
    else if (e.key === "k") playOrSelect(Math.max(current - 1, 0));
    else if (e.key === "d") { dim = (dim + 1) % Math.max(book.length, 1); showDimension(); }
    else if (e.key === "e") { e.preventDefault(); edit(); }
    else if (e.key === "u") undo();
    else if (/^[0-9]$/.test(e.key)) applyKey(e.key);
  });
  function playOrSelect(i) {
    if (i >= rows.length) return;
    if (media && !media.paused) playFrom(i);
    else { select(i); if (media) media.currentTime = starts[i] + 0.01; }
  }
  // Diarisation gave this row to the wrong label: move it (kept in history, `u` takes it back).
  const mover = $("#move");
  if (mover) mover.addEventListener("submit", e => {
    e.preventDefault();
    if (current < 0) { say("choose a row first (click it, or j)", "error"); return; }
    if (!coder() && !chooseCoder()) return;
    save("/api/move", { observation_id: rows[current].dataset.id, label: mover.label.value }, r => {
      if (r.status === 200) { say("moved"); location.reload(); }
    });
  });
  // A link from the review or agreement page (#o-ID) opens at that row, playing.
  const target = location.hash ? rows.findIndex(r => "#" + r.id === location.hash) : -1;
  if (target >= 0) playFrom(target);
}

// ---------------------------------------------------------------- the speakers page
const speakers = $("table.speakers");
if (speakers) {
  const recording = speakers.dataset.recording, media = $("#media");
  let stopAt = null;
  if (media) media.addEventListener("timeupdate", () => { if (stopAt !== null && media.currentTime >= stopAt) { media.pause(); stopAt = null; } });
  $$(".play-span").forEach(b => b.addEventListener("click", () => {
    media.currentTime = parseFloat(b.dataset.start);
    stopAt = parseFloat(b.dataset.end);
    media.play().catch(() => {});
  }));
  const done = r => { if (r.status === 200) location.reload(); };
  $$("form.assign").forEach(f => f.addEventListener("submit", e => {
    e.preventDefault();
    if (!coder() && !chooseCoder()) return;
    const label = f.closest("tr").dataset.label;
    save("/api/assign", { recording_id: recording, label, participant: f.participant.value, role: f.role.value }, done);
  }));
  // Confirming a suggestion from voiceprints is assigning the same participant and role oneself.
  $$("form.confirm").forEach(f => f.addEventListener("submit", e => {
    e.preventDefault();
    if (!coder() && !chooseCoder()) return;
    const label = f.closest("tr").dataset.label;
    save("/api/assign", { recording_id: recording, label, participant: f.dataset.participant, role: f.dataset.role }, done);
  }));
  $$("form.merge").forEach(f => f.addEventListener("submit", e => {
    e.preventDefault();
    if (!coder() && !chooseCoder()) return;
    const label = f.closest("tr").dataset.label;
    save("/api/merge", { recording_id: recording, label, into: f.into.value }, done);
  }));
}

// `u` on the speakers page takes back this coder's last change (an assignment or merge too).
if (speakers) document.addEventListener("keydown", e => {
  if (e.key !== "u" || e.target.matches("input, textarea, select") || e.ctrlKey || e.metaKey || e.altKey) return;
  if (!coder()) { say("no coder chosen: nothing to undo", "error"); return; }
  save("/api/undo", {}, r => { if (r.status === 200) { say("undone"); location.reload(); } });
});

// ---------------------------------------------------------------- the review page
$$("td.resolve button").forEach(b => b.addEventListener("click", () => {
  if (!coder() && !chooseCoder()) return;
  const id = b.closest("tr").dataset.id;
  save("/api/resolve", { observation_id: id, outcome: b.dataset.outcome }, r => { if (r.status === 200) location.reload(); });
}));
$$("td.resolve-carried button").forEach(b => b.addEventListener("click", () => {
  if (!coder() && !chooseCoder()) return;
  const item = b.closest("tr").dataset.item;
  save("/api/resolve-carried", { item_id: item, outcome: b.dataset.outcome }, r => { if (r.status === 200) location.reload(); });
}));
