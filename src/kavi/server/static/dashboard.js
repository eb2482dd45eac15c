// kavi dashboard: the little that needs a script. Written for kavi, no dependencies, no build step.
// - Live: follow the API's event stream (EventSource) and insert the server-rendered rows past the cursor.
// - Decisions: the promote, revoke and reject buttons open a <dialog> that asks for confirmation (and a
//   reason), then POST JSON to the API from this same origin, so the server's same-origin rule applies.
"use strict";

function followLive(list) {
  let cursor = Number(list.dataset.liveCursor || 0);
  let busy = false;
  let again = false;
  const state = document.getElementById("live-state");

  async function fetchRows() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(`${list.dataset.liveRows}?after=${cursor}`, { headers: { Accept: "text/html" } });
      if (!response.ok) { return; }
      const template = document.createElement("template");
      template.innerHTML = await response.text();  // HTML rendered (and escaped) by the server's templates
      const rows = Array.from(template.content.querySelectorAll("li[data-seq]"))
        .filter((row) => Number(row.dataset.seq) > cursor);
      for (const row of rows.reverse()) {
        row.classList.add("fresh");
        list.prepend(row);
        cursor = Math.max(cursor, Number(row.dataset.seq));
      }
      if (rows.length) {
        const empty = document.getElementById("live-empty");
        if (empty) { empty.remove(); }
        if (state) { state.textContent = `Live: showing the ledger up to event #${cursor}.`; }
      }
    } finally {
      busy = false;
      if (again) { again = false; fetchRows(); }
    }
  }

  const source = new EventSource(list.dataset.liveStream);
  source.addEventListener("open", () => {
    list.dataset.connected = "true";
    if (state) { state.textContent = `Live: following the ledger from event #${cursor}.`; }
    fetchRows();  // whatever happened while (re)connecting
  });
  source.addEventListener("error", () => {
    list.dataset.connected = "false";
    if (state) { state.textContent = "Live: the event stream is interrupted; reconnecting…"; }
  });
  for (const kind of (list.dataset.liveKinds || "").split(" ").filter(Boolean)) {
    source.addEventListener(kind, fetchRows);
  }
  source.addEventListener("message", fetchRows);
}

function wireDecision(button) {
  const dialog = document.getElementById(button.dataset.confirm);
  if (!dialog) { return; }
  button.disabled = false;
  button.addEventListener("click", () => {
    const form = dialog.querySelector("form");
    form.reset();
    dialog.querySelector(".dialog-result").textContent = "";
    for (const slot of dialog.querySelectorAll("[data-fill]")) { slot.textContent = button.dataset[slot.dataset.fill] || ""; }
    for (const field of dialog.querySelectorAll("input[type=hidden][data-json]")) { field.value = button.dataset[field.name] || ""; }
    dialog.showModal();
  });
  if (dialog.dataset.wired) { return; }
  dialog.dataset.wired = "true";
  dialog.querySelector("[data-submit]").addEventListener("click", async (event) => {
    event.preventDefault();
    const form = dialog.querySelector("form");
    const result = dialog.querySelector(".dialog-result");
    if (!form.reportValidity()) { return; }
    for (const field of form.querySelectorAll("[data-must-equal]")) {
      if (field.value.trim() !== field.dataset.mustEqual) { result.textContent = `Type ${field.dataset.mustEqual} to confirm.`; field.focus(); return; }
    }
    const body = {};
    for (const field of form.querySelectorAll("[data-json]")) {
      if (field.type === "checkbox") { body[field.dataset.json] = field.checked; }
      else if (field.value !== "") { body[field.dataset.json] = "number" in field.dataset ? Number(field.value) : field.value; }
    }
    result.textContent = "Sending…";
    const response = await fetch(dialog.dataset.url, {
      method: dialog.dataset.method || "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    if (response.ok) { result.textContent = "Done."; window.location.reload(); return; }
    let detail = `HTTP ${response.status}`;
    try { const problem = await response.json(); detail = [problem.detail, problem.hint].filter(Boolean).join(" — ") || detail; } catch (_) { /* not JSON */ }
    result.textContent = `Refused: ${detail}`;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live-events");
  if (live && "EventSource" in window) { followLive(live); }
  for (const button of document.querySelectorAll("button[data-confirm]")) { wireDecision(button); }
});
