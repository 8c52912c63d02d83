// The home screen refreshes itself like the cross-plant list: every refresh interval, without a reload,
// the gateway counts and sold energy (/api/v1/summary), the current notices (from the same answer) and
// the latest events in the reader's language (/api/v1/events?lang=) replace what the server rendered.
(function () {
  "use strict";
  const W = (key) => (window.PMS.words[key] || key);
  const lang = window.PMS.lang === "en" ? "en" : "ja";
  const locale = lang === "en" ? "en-US" : "ja-JP";
  const nf = (digits) => new Intl.NumberFormat(locale, {minimumFractionDigits: digits, maximumFractionDigits: digits});
  // "2026-06-17 12:00:05" in Japan time whatever the browser's zone, as the server writes it.
  const jstFormat = new Intl.DateTimeFormat("sv-SE", {timeZone: "Asia/Tokyo", year: "numeric", month: "2-digit",
    day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false});
  const jst = (iso, seconds) => (iso ? jstFormat.format(new Date(iso)).slice(0, seconds ? 19 : 16) : "");
  const EVENTS_SHOWN = 50;  // as many as the server renders

  const script = document.currentScript ? document.currentScript.dataset : {};
  const plantUrl = script.plantUrl || "/plants/CODE";
  if (!document.getElementById("management-status")) { return; }

  async function getJson(url) {
    const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!response.ok) { throw new Error(url + ": HTTP " + response.status); }
    return response.json();
  }

  function setText(id, text) {
    const el = document.getElementById(id);
    if (!el) { return null; }
    const target = el.querySelector("a") || el;  // the total links to the gateways page
    target.textContent = text;
    return el;
  }

  function renderSummary(s) {
    const count = (n) => nf(0).format(n);
    setText("gw-normal", count(s.gateways.normal));
    const abnormal = setText("gw-abnormal", count(s.gateways.abnormal));
    if (abnormal) { abnormal.classList.toggle("offline", s.gateways.abnormal > 0); }
    setText("gw-never-seen", count(s.gateways.never_seen));
    setText("gw-unbound", count(s.gateways.unbound));
    setText("gw-total", count(s.gateways.total));
    setText("plant-count", count(s.plants));
    setText("total-sold", nf(1).format(s.total_sold_kwh) + " kWh");
    setText("today-sold", nf(1).format(s.today_sold_kwh));
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined && text !== null) { el.textContent = text; }
    return el;
  }

  function renderNotices(notices) {
    const old = document.getElementById("notices");
    if (!old) { return; }
    let fresh;
    if (!notices.length) {
      fresh = element("p", null, W("no_notices"));
    } else {
      fresh = element("ul", "notices");
      for (const n of notices) {
        const title = lang === "en" && n.title_en ? n.title_en : n.title;
        const body = lang === "en" && n.body_en ? n.body_en : n.body;
        const li = element("li", "notice-" + n.kind);
        li.appendChild(element("strong", null, "[" + W("notice_" + n.kind) + "] " + title));
        if (n.starts_at) {
          li.appendChild(document.createTextNode(" "));
          li.appendChild(element("span", "when", jst(n.starts_at, false) + (n.ends_at ? " – " + jst(n.ends_at, false) : "")));
        }
        li.appendChild(element("p", null, body));
        fresh.appendChild(li);
      }
    }
    fresh.id = "notices";
    old.replaceWith(fresh);
  }

  function renderEvents(events) {
    const body = document.querySelector("#events tbody");
    if (!body) { return; }
    const rows = document.createDocumentFragment();
    for (const e of events) {
      const tr = element("tr", "event-" + e.state + " phase-" + e.phase + (e.severity ? " severity-" + e.severity : ""));
      tr.dataset.eventId = String(e.event_id);
      tr.appendChild(element("td", null, jst(e.opened_at, true)));
      tr.appendChild(element("td", "event-kind", e.kind_label));
      tr.appendChild(element("td", "event-phase", W("fl_phase_" + e.phase)));
      const plant = element("td");
      if (e.service_code) {
        const link = element("a", null, e.service_code);
        link.href = plantUrl.replace("CODE", e.service_code);
        plant.appendChild(link);
      }
      tr.appendChild(plant);
      const text = element("td", "event-text", e.text);
      if (e.phase === "acknowledged") {
        text.appendChild(element("p", "ack", W("event_acknowledged_by") + ": " + (e.acknowledged_by || "—") + " (" +
          jst(e.acknowledged_at, false) + ")" + (e.ack_comment ? ": " + e.ack_comment : "")));
      }
      tr.appendChild(text);
      tr.appendChild(element("td", null, jst(e.recovered_at, true)));
      rows.appendChild(tr);
    }
    if (!events.length) {
      const tr = element("tr");
      const td = element("td", null, W("no_events"));
      td.colSpan = 6;
      tr.appendChild(td);
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
  }

  async function refresh() {
    try {
      const [summary, events] = await Promise.all([
        getJson("/api/v1/summary"), getJson("/api/v1/events?limit=" + EVENTS_SHOWN + "&lang=" + lang)]);
      renderSummary(summary);
      renderNotices(summary.notices);
      renderEvents(events.items);
      document.getElementById("management-status").dataset.refreshedAt = new Date().toISOString();
    } catch (error) { console.error(error); }
  }

  setInterval(() => { if (!document.hidden) { refresh(); } }, window.PMS.refreshMs);
})();
