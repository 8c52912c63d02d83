// The gateway page follows its commands and its configuration from /api/v1 (login session, GET only):
// a queued command turns sent, then succeeded/failed/expired with its result, without a reload.
(function () {
  "use strict";
  const W = (key) => (window.PMS.words[key] || key);
  const OPEN = new Set(["queued", "sent"]);
  const when = (iso) => new Date(iso).toLocaleString("sv-SE", {timeZone: "Asia/Tokyo"});

  async function getJson(url) {
    const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!response.ok) { throw new Error(url + ": HTTP " + response.status); }
    return response.json();
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) { td.className = className; }
    td.textContent = text;
    return td;
  }

  function renderCommands(items) {
    const body = document.querySelector("#gateway-commands tbody");
    if (!items.length) { return; }
    body.replaceChildren(...items.map((c) => {
      const row = document.createElement("tr");
      row.dataset.command = c.command_id;
      row.className = "command-" + c.state;
      const what = cell(W("command_" + c.command) + " ");
      if (Object.keys(c.args).length) {
        const args = document.createElement("small");
        args.textContent = JSON.stringify(c.args);
        what.append(args);
      }
      const result = cell("", "result");
      if (c.result) {
        const code = document.createElement("code");
        code.textContent = JSON.stringify(c.result);
        result.append(code);
      }
      if (c.reason) { result.append(c.reason); }
      row.append(cell(when(c.created_at)), what, cell(W("command_state_" + c.state), "state"), result,
        cell(c.requested_by), cell(when(c.deadline)));
      return row;
    }));
  }

  function renderConfig(config) {
    for (const [label, side] of [["config_desired", config.desired], ["config_reported", config.reported]]) {
      const row = document.getElementById("config-" + label);
      if (!row || !side || !row.querySelector(".version")) { continue; }
      row.querySelector(".version").textContent = side.version;
      for (const name of ["power_interval_s", "heartbeat_interval_s", "energy_interval_s", "log_level"]) {
        const value = side.document[name];
        row.querySelector("." + name).textContent = value === null || value === undefined ? "—" : value;
      }
    }
    const drift = document.getElementById("config-drift");
    if (config.desired) {
      drift.className = config.drift ? "drift" : "in-sync";
      drift.textContent = W(config.drift ? "config_drift" : "config_in_sync");
    }
    return config.drift;
  }

  async function follow(gatewayId) {
    const base = "/api/v1/gateways/" + encodeURIComponent(gatewayId);
    let busy = false;
    try {
      const page = await getJson(base + "/commands?limit=10");
      renderCommands(page.items);
      busy = page.items.some((c) => OPEN.has(c.state));
      busy = renderConfig(await getJson(base + "/config")) || busy;
    } catch (error) {
      console.warn("gateway page refresh failed", error);
    }
    // Quickly while something is on its way, at the list's pace otherwise.
    window.setTimeout(() => follow(gatewayId), busy ? 1000 : window.PMS.refreshMs);
  }

  const table = document.getElementById("config-state");
  if (table) { follow(table.dataset.gateway); }
})();
