// The cross-plant list and its graph view (sales.html): search, filters, sortable columns and paging
// answered by the server (/api/v1/plants), the visible page refreshed every refresh interval without a
// reload, and the page's state kept in the URL's query so that a reload or a shared link shows the same.
(function () {
  "use strict";
  const W = (key) => (window.PMS.words[key] || key);
  const locale = window.PMS.lang === "en" ? "en-US" : "ja-JP";
  const nf = (digits) => new Intl.NumberFormat(locale, {minimumFractionDigits: digits, maximumFractionDigits: digits});
  const FILTERS = ["q", "status", "customer_id", "tag", "not_measured"];
  const DESCENDING_FIRST = ["current_sold_w", "today_sold_kwh", "pr"];  // the biggest is what one looks for
  const SEARCH_DELAY_MS = 250;
  const SVG = "http://www.w3.org/2000/svg";
  const SPARKLINES_PER_ASK = 200;  // pms_api.plant_list_models.MAX_SPARKLINES

  const script = document.currentScript ? document.currentScript.dataset : {};
  const view = script.view || "list";
  const plantUrl = script.plantUrl || "/plants/CODE";
  const table = document.getElementById("plants");
  const form = document.getElementById("plant-filters");
  if (!table || !form) { return; }

  // The state starts from the URL (what the server rendered), with the page size the server chose.
  const params = new URLSearchParams(window.location.search);
  const state = {sort: params.get("sort") || "service_code", order: params.get("order") || "asc",
    offset: Number(script.offset || 0), limit: Number(script.limit || 100)};
  for (const key of FILTERS) { state[key] = params.get(key) || ""; }

  let asked = 0;  // answers to older requests than the latest are dropped (typing outruns the server)

  function query() {
    const q = new URLSearchParams();
    for (const key of FILTERS) { if (state[key]) { q.set(key, state[key]); } }
    if (state.sort !== "service_code") { q.set("sort", state.sort); }
    if (state.order !== "asc") { q.set("order", state.order); }
    if (state.offset) { q.set("offset", String(state.offset)); }
    return q;
  }

  async function getJson(url) {
    const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!response.ok) { throw new Error(url + ": HTTP " + response.status); }
    return response.json();
  }

  function stamp(ok) {
    const el = document.getElementById("updated-at");
    if (!el) { return; }
    el.classList.toggle("stale", !ok);
    el.title = ok ? "" : W("fl_failed");
    if (ok) {  // Japan time whatever the browser's zone, like every other time on the console
      el.textContent = new Date().toLocaleTimeString(locale, {timeZone: "Asia/Tokyo", timeZoneName: "short"});
    }
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    if (className) { td.className = className; }
    if (text !== null) { td.textContent = text; }
    row.appendChild(td);
    return td;
  }

  function renderRows(items) {
    const body = table.tBodies[0];
    const rows = document.createDocumentFragment();
    for (const p of items) {
      const tr = document.createElement("tr");
      tr.dataset.code = p.service_code;
      const link = document.createElement("a");
      link.href = plantUrl.replace("CODE", p.service_code);
      link.textContent = p.service_code;
      cell(tr, null).appendChild(link);
      cell(tr, p.name, "name");
      cell(tr, p.customer_id);
      if (view === "list") { cell(tr, p.address); cell(tr, p.phone); } else { cell(tr, null, "spark"); }
      const sold = cell(tr, p.current_sold_w === null ? W("not_measured") : nf(0).format(p.current_sold_w) + " W",
        "num sold-w");
      sold.classList.toggle("not-measured", p.current_sold_w === null);
      cell(tr, nf(2).format(p.today_sold_kwh) + " kWh", "num today-kwh");
      if (view === "list") {
        cell(tr, p.pr_sold_yesterday === null ? "—" : Math.round(p.pr_sold_yesterday * 100) + "%", "num pr");
      }
      cell(tr, W("status_" + p.status), "status status-" + p.status);
      rows.appendChild(tr);
    }
    if (!items.length) {
      const tr = document.createElement("tr");
      tr.className = "none-match";
      cell(tr, W("fl_none_match")).colSpan = 8;
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
  }

  function renderPager(page) {
    const first = page.items.length ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    const range = document.getElementById("page-range");
    range.dataset.first = String(first);
    range.dataset.last = String(last);
    range.dataset.total = String(page.total);
    range.textContent = W("fl_range").replace("{first}", nf(0).format(first)).replace("{last}", nf(0).format(last))
      .replace("{total}", nf(0).format(page.total));
    document.getElementById("page-prev").disabled = page.offset === 0;
    document.getElementById("page-next").disabled = last >= page.total;
  }

  function renderSortMarks() {
    for (const th of table.tHead.querySelectorAll("th[data-sort]")) {
      th.classList.toggle("sorted-asc", th.dataset.sort === state.sort && state.order === "asc");
      th.classList.toggle("sorted-desc", th.dataset.sort === state.sort && state.order === "desc");
    }
  }

  // One small line per plant of today's 30-minute mean sold power, all on the page's common scale so
  // that rows compare at a glance; a slot without data leaves a gap.
  function drawSparkline(td, values, top) {
    const width = 240;
    const height = 36;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("class", "sparkline");
    const step = width / Math.max(1, values.length - 1);
    let points = [];
    const flush = () => {
      if (points.length) {
        const line = document.createElementNS(SVG, points.length > 1 ? "polyline" : "circle");
        if (points.length > 1) { line.setAttribute("points", points.join(" ")); } else {
          const [x, y] = points[0].split(",");
          line.setAttribute("cx", x); line.setAttribute("cy", y); line.setAttribute("r", "1.5");
        }
        svg.appendChild(line);
      }
      points = [];
    };
    values.forEach((v, i) => {
      if (v === null) { flush(); return; }
      const y = height - 2 - (top > 0 ? (v / top) * (height - 4) : 0);
      points.push((i * step).toFixed(1) + "," + y.toFixed(1));
    });
    flush();
    const known = values.filter((v) => v !== null);
    const title = document.createElementNS(SVG, "title");
    title.textContent = known.length ? W("fl_peak_today") + ": " + nf(0).format(Math.max(...known)) + " W" : W("no_data");
    svg.appendChild(title);
    td.replaceChildren(svg);
  }

  async function loadSparklines(items, ticket) {
    if (view !== "graph" || !items.length) { return; }
    const codes = items.map((p) => p.service_code);
    const asks = [];
    for (let at = 0; at < codes.length; at += SPARKLINES_PER_ASK) {  // the API takes so many codes at once
      asks.push(getJson("/api/v1/plants/sparklines?codes=" + codes.slice(at, at + SPARKLINES_PER_ASK).join(",")));
    }
    const lines = (await Promise.all(asks)).flatMap((answer) => answer.items);
    if (ticket !== asked) { return; }
    const top = Math.max(0, ...lines.flatMap((s) => s.sold_w.filter((v) => v !== null)));
    for (const s of lines) {
      const td = table.querySelector('tr[data-code="' + s.service_code + '"] td.spark');
      if (td) { drawSparkline(td, s.sold_w, top); }
    }
  }

  async function load() {
    const ticket = ++asked;
    const q = query();
    // The address shows the state (without the page size, which belongs to the view).
    const shown = q.toString();
    window.history.replaceState(null, "", window.location.pathname + (shown ? "?" + shown : ""));
    q.set("limit", String(state.limit));
    try {
      const page = await getJson("/api/v1/plants?" + q.toString());
      if (ticket !== asked) { return; }
      renderRows(page.items);
      renderPager(page);
      renderSortMarks();
      stamp(true);
      await loadSparklines(page.items, ticket);
    } catch (error) {
      if (ticket === asked) { stamp(false); }
      console.error(error);
    }
  }

  function changed() { state.offset = 0; load(); }

  let typing = null;
  document.getElementById("plant-search").addEventListener("input", (event) => {
    state.q = event.target.value.trim();
    clearTimeout(typing);
    typing = setTimeout(changed, SEARCH_DELAY_MS);
  });
  form.addEventListener("submit", (event) => {  // Enter searches at once, without leaving the page
    event.preventDefault();
    clearTimeout(typing);
    state.q = document.getElementById("plant-search").value.trim();
    changed();
  });
  for (const [id, key] of [["filter-status", "status"], ["filter-customer", "customer_id"]]) {
    const select = document.getElementById(id);
    if (select) { select.addEventListener("change", () => { state[key] = select.value; changed(); }); }
  }
  const tag = document.getElementById("filter-tag");
  tag.addEventListener("change", () => { state.tag = tag.value.trim(); changed(); });
  const notMeasured = document.getElementById("filter-not-measured");
  notMeasured.addEventListener("change", () => { state.not_measured = notMeasured.checked ? "true" : ""; changed(); });
  table.tHead.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-sort]");
    if (!button) { return; }
    const key = button.dataset.sort;
    if (state.sort === key) {
      state.order = state.order === "asc" ? "desc" : "asc";
    } else {
      state.sort = key;
      state.order = DESCENDING_FIRST.includes(key) ? "desc" : "asc";
    }
    changed();
  });
  document.getElementById("page-prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    load();
  });
  document.getElementById("page-next").addEventListener("click", () => {
    state.offset += state.limit;
    load();
  });

  stamp(true);
  loadSparklines(Array.from(table.tBodies[0].querySelectorAll("tr[data-code]"), (tr) => ({service_code: tr.dataset.code})),
    asked).catch((error) => console.error(error));
  setInterval(() => { if (!document.hidden) { load(); } }, window.PMS.refreshMs);
})();
