// The rollout page follows its rollout from /api/v1/rollouts/{id} (login session, GET only): the
// state, each group's bar and counts, each gateway's row, redrawn every 2 s without a reload.
(function () {
  "use strict";
  const W = (key) => (window.PMS.words[key] || key);
  const POLL_MS = 2000;
  const ORDER = ["pending", "waiting_window", "queued", "downloading", "verifying", "installing", "restarting",
    "checking_health", "committed", "rolled_back", "failed", "expired", "cancelled"];
  const ENDED = new Set(["cancelled", "aborted", "completed"]);
  const FINAL = new Set(["committed", "rolled_back", "failed", "expired", "cancelled"]);
  const when = (iso) => (iso ? new Date(iso).toLocaleString("sv-SE", {timeZone: "Asia/Tokyo"}) : "—");

  async function getJson(url) {
    const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!response.ok) { throw new Error(url + ": HTTP " + response.status); }
    return response.json();
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined) { el.textContent = text; }
    return el;
  }

  // The same bands as the server's (pms_api.rollout_progress), given on the page as data-bands.
  function drawBar(bar, counts, bands) {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    for (const [band, states] of Object.entries(bands)) {
      const span = bar.querySelector('[data-band="' + band + '"]');
      if (!span) { continue; }
      const count = states.reduce((sum, state) => sum + (counts[state] || 0), 0);
      span.dataset.count = String(count);
      span.style.width = (total ? (100 * count / total).toFixed(2) : "0") + "%";
      span.title = W("band_" + band) + ": " + count;
    }
  }

  function drawCounts(cell, counts) {
    const states = Object.keys(counts).filter((s) => counts[s]).sort((a, b) => {
      const ra = ORDER.indexOf(a) < 0 ? ORDER.length : ORDER.indexOf(a);
      const rb = ORDER.indexOf(b) < 0 ? ORDER.length : ORDER.indexOf(b);
      return ra - rb || a.localeCompare(b);
    });
    cell.replaceChildren(...states.flatMap((state) => {
      const span = element("span", "count member-" + state, W("member_state_" + state) + " ");
      span.dataset.state = state;
      span.append(element("b", "", String(counts[state])));
      return [span, document.createTextNode(" ")];
    }));
  }

  function drawRollout(rollout, box) {
    box.dataset.state = rollout.state;
    const state = document.getElementById("rollout-state");
    state.textContent = W("rollout_state_" + rollout.state);
    state.className = "rollout-state rollout-" + rollout.state;
    document.getElementById("rollout-reason").textContent = rollout.state_reason || "";
    document.getElementById("rollout-updated").textContent = when(rollout.updated_at);
    const allowed = {pause: rollout.state === "running", resume: rollout.state === "paused",
      cancel: rollout.state === "running" || rollout.state === "paused"};
    for (const form of box.querySelectorAll("form.rollout-action")) {
      form.hidden = !allowed[form.dataset.action];
    }
  }

  function drawGroups(groups, bands) {
    for (const g of groups) {
      const row = document.querySelector('#rollout-groups tr[data-group="' + g.group_index + '"]');
      if (!row) { continue; }
      row.querySelector(".total").textContent = String(g.total);
      row.querySelector(".started").textContent = W(g.started ? "yes" : "no");
      drawBar(row.querySelector(".progress"), g.counts, bands);
      drawCounts(row.querySelector(".counts"), g.counts);
    }
  }

  let rowsByGateway = null;  // found once: a rollout of thousands is redrawn every 2 s

  function drawGateways(gateways) {
    if (rowsByGateway === null) {
      rowsByGateway = new Map([...document.querySelectorAll("#rollout-gateways tbody tr")]
        .map((row) => [row.dataset.gateway, row]));
    }
    for (const m of gateways) {
      const row = rowsByGateway.get(m.gateway_id);
      if (!row) { continue; }
      row.className = "member-" + m.state;
      row.querySelector(".state").textContent = W("member_state_" + m.state);
      row.querySelector(".reason").textContent = m.reason || "";
      row.querySelector(".versions").textContent = (m.from_version || "—") + " → " + (m.version || "—");
      row.querySelector(".since").textContent = when(m.state_since);
    }
  }

  async function follow(box, bands) {
    let ended = false;
    try {
      const body = await getJson("/api/v1/rollouts/" + encodeURIComponent(box.dataset.rollout));
      drawRollout(body, box);
      drawGroups(body.group_progress, bands);
      drawGateways(body.gateways);
      ended = ENDED.has(body.state) && body.gateways.every((m) => FINAL.has(m.state));
    } catch (error) {
      console.warn("rollout page refresh failed", error);
    }
    // An ended rollout whose every gateway is done changes no more: the page stops asking.
    if (!ended) { window.setTimeout(() => follow(box, bands), POLL_MS); }
  }

  const box = document.getElementById("rollout-actions");
  if (box) {
    const cancel = box.querySelector('form[data-action="cancel"]');
    if (cancel) {
      cancel.addEventListener("submit", (event) => {
        if (!window.confirm(W("rollout_cancel_confirm"))) { event.preventDefault(); }
      });
    }
    window.setTimeout(() => follow(box, JSON.parse(box.dataset.bands)), POLL_MS);
  }
})();
