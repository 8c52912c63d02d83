// The console's plant charts, drawn from /api/v1 (login session, GET only); the cross-plant list is static/sales.js.
(function () {
  "use strict";
  const W = (key) => (window.PMS.words[key] || key);

  async function getJson(url) {
    const response = await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}});
    if (!response.ok) { throw new Error(url + ": HTTP " + response.status); }
    return response.json();
  }

  // ---- plant detail -------------------------------------------------------------------------------
  function monthBounds(day) {
    const [y, m] = day.split("-").map(Number);
    const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
    const mm = String(m).padStart(2, "0");
    return [y + "-" + mm + "-01", y + "-" + mm + "-" + String(last).padStart(2, "0")];
  }

  // A series with no data is left out, and so is a secondary axis no remaining series uses (no empty
  // °C axis beside the irradiance); the first series stays so an empty chart still says "no data".
  // The legend sits above the plot, in a top margin made for it, so it never covers the axes' labels;
  // every axis keeps its labels inside the chart's box (automargin).
  function chart(id, traces, yTitle, extra) {
    const el = document.getElementById("chart-" + id);
    const hasData = (t) => t.y.some((v) => v !== null && v !== undefined);
    const empty = !traces.some(hasData);
    const shown = traces.filter((t, i) => hasData(t) || (empty && i === 0));
    const legend = shown.length > 1;
    const layout = Object.assign({margin: {t: legend ? 40 : 10, r: 10}, yaxis: {title: {text: yTitle}, automargin: true},
      showlegend: legend, legend: {orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom"},
      annotations: empty ? [{text: W("no_data"), showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5}] : []},
    extra || {});
    for (const t of traces) {
      if (t.yaxis && t.yaxis !== "y" && !shown.some((s) => s.yaxis === t.yaxis)) {
        delete layout["yaxis" + t.yaxis.slice(1)];
      }
    }
    if (layout.yaxis2) { layout.yaxis2.automargin = true; }
    Plotly.react(el, shown, layout, {displaylogo: false, responsive: true});
  }

  // Calendar periods as category labels, every period of the range present (empty ones too), so a
  // month with one day of data still reads as a month. JST wall-clock digits come straight from the
  // ISO strings (they carry +09:00), never from the browser's own time zone. Labels are written the
  // reader's way: 6/1 for a day, 6月 / Jun for a month (the year is the axis title).
  const locale = () => (window.PMS.lang === "en" ? "en-US" : "ja-JP");
  function calendarLabel(y, m, day) {
    const options = day ? {month: "numeric", day: "numeric"} : {month: "short"};
    return new Intl.DateTimeFormat(locale(), Object.assign({timeZone: "UTC"}, options))
      .format(new Date(Date.UTC(y, m - 1, day || 1)));
  }

  function periods(kind, d) {
    const pad = (n) => String(n).padStart(2, "0");
    if (kind === "hour") { return [...Array(24).keys()].map((h) => [d.day + "T" + pad(h), pad(h) + ":00"]); }
    if (kind === "month") {
      const year = Number(d.year[0].slice(0, 4));
      return [...Array(12).keys()].map((m) => [year + "-" + pad(m + 1), calendarLabel(year, m + 1)]);
    }
    const last = Number(d.month[1].slice(8, 10));
    const [y, m] = d.month[0].split("-").map(Number);
    return [...Array(last).keys()].map((i) => [d.month[0].slice(0, 8) + pad(i + 1), calendarLabel(y, m, i + 1)]);
  }

  // Which period labels carry a tick: at least every 3rd hour, every 2nd day, every month, and sparser
  // when the chart is too narrow for them side by side (LABEL_PX: a label's width with its gap).
  // Explicit ticks, so the labels never depend on Plotly guessing a date format from category names.
  const TICK_EVERY = {hour: 3, day: 2, month: 1};
  const LABEL_PX = {hour: 44, day: 40, month: 44};
  function categoryAxis(kind, d, id) {
    const labels = periods(kind, d).map((slot) => slot[1]);
    const plotPx = Math.max(120, (document.getElementById("chart-" + id).clientWidth || 600) - 90);
    const every = Math.max(TICK_EVERY[kind], Math.ceil(labels.length * LABEL_PX[kind] / plotPx));
    const ticks = labels.filter((label, i) => i % every === 0);
    const year = kind === "month" ? new Intl.DateTimeFormat(locale(), {year: "numeric", timeZone: "UTC"})
      .format(new Date(Date.UTC(Number(d.year[0].slice(0, 4)), 0, 1))) : "";
    return {type: "category", tickmode: "array", tickvals: ticks, ticktext: ticks, tickangle: 0, automargin: true,
      title: {text: year}};
  }

  function byPeriod(kind, d, items, keyOf, valueOf) {
    const width = {hour: 13, day: 10, month: 7}[kind];
    const values = new Map(items.map((item) => [keyOf(item).slice(0, width), valueOf(item)]));
    const slots = periods(kind, d);
    return {x: slots.map((slot) => slot[1]), y: slots.map((slot) => (values.has(slot[0]) ? values.get(slot[0]) : null))};
  }

  // A whole JST day on a time axis, so one sample right after midnight still sits on a readable day
  // (Plotly would otherwise zoom into a few milliseconds around it); a tick every 3 hours, 00:00 to
  // 24:00 (the day's end written as 24:00, not as a second 00:00).
  function dayAxis(day) {
    const [y, m, dd] = day.split("-").map(Number);
    const next = new Date(Date.UTC(y, m - 1, dd + 1)).toISOString().slice(0, 10);
    const hours = [0, 3, 6, 9, 12, 15, 18, 21, 24];
    const at = (h) => (h === 24 ? next + "T00:00:00" : day + "T" + String(h).padStart(2, "0") + ":00:00");
    return {xaxis: {type: "date", range: [day + "T00:00:00", next + "T00:00:00"], tickmode: "array",
      tickvals: hours.map(at), ticktext: hours.map((h) => String(h).padStart(2, "0") + ":00"), tickangle: 0,
      automargin: true}};
  }

  // Lines between samples, and markers too while there are few enough to see one by one.
  function lineMode(items) { return items.length > 60 ? "lines" : "lines+markers"; }

  window.PMS.startPlant = function (code) {
    const base = "/api/v1/plants/" + code;
    const views = [
      ["realtime", (d) => base + "/power?start=" + d.day + "&end=" + d.day, (s, d) => chart("realtime",
        [{type: "scatter", mode: lineMode(s.items), x: s.items.map((p) => p.measured_at.slice(0, 19)),
          y: s.items.map((p) => p.sold_power_w), name: W("sold_w"), line: {color: "#0b5394"}}], W("sold_w"),
        dayAxis(d.day))],
      ["energy-hour", (d) => base + "/energy?interval=hour&start=" + d.day + "&end=" + d.day, (s, d) => energyChart("energy-hour", "hour", s, d)],
      ["energy-day", (d) => base + "/energy?interval=day&start=" + d.month[0] + "&end=" + d.month[1], (s, d) => energyChart("energy-day", "day", s, d)],
      ["energy-month", (d) => base + "/energy?interval=month&start=" + d.year[0] + "&end=" + d.year[1], (s, d) => energyChart("energy-month", "month", s, d)],
      ["peaks", (d) => base + "/peaks?start=" + d.month[0] + "&end=" + d.month[1], (s, d) => {
        const series = byPeriod("day", d, s.items, (p) => p.day, (p) => p.peak_sold_w);
        chart("peaks", [Object.assign({type: "bar", name: W("sold_w"), marker: {color: "#e69138"}}, series)],
          W("sold_w"), {xaxis: categoryAxis("day", d, "peaks")});
      }],
      ["price", (d) => base + "/price?interval=day&start=" + d.month[0] + "&end=" + d.month[1], (s, d) => {
        const series = byPeriod("day", d, s.items, (p) => p.period_start, (p) => p.amount_yen);
        chart("price", [Object.assign({type: "bar", name: W("amount_yen"), marker: {color: "#38761d"}}, series)],
          W("amount_yen"), {xaxis: categoryAxis("day", d, "price")});
      }],
      ["weather", (d) => base + "/weather?start=" + d.day + "&end=" + d.day, (s, d) => {
        // Irradiances are slot means named by the slot's end, so they are drawn as steps ending there.
        const x = s.items.map((p) => p.observed_at.slice(0, 19));
        const series = (field, name, more) => Object.assign({type: "scatter", mode: lineMode(s.items), x: x,
          y: s.items.map((p) => (p[field] === undefined ? null : p[field])), name: name, line: {shape: "vh"}}, more || {});
        chart("weather", [series("ghi_w_m2", W("ghi_series")), series("gti_w_m2", W("gti")),
          series("dni_w_m2", "DNI"), series("dhi_w_m2", "DHI"),
          series("temperature_c", W("temperature"), {yaxis: "y2", line: {shape: "linear", dash: "dot"}})], W("ghi"),
        Object.assign({yaxis2: {overlaying: "y", side: "right", title: {text: W("temperature")}}}, dayAxis(d.day)));
      }],
      ["expected-hour", (d) => base + "/expected?interval=hour&start=" + d.day + "&end=" + d.day, (s, d) => expectedChart("expected-hour", "hour", s, d)],
      ["expected-day", (d) => base + "/expected?interval=day&start=" + d.month[0] + "&end=" + d.month[1], (s, d) => expectedChart("expected-day", "day", s, d)],
    ];

    // Sold energy as bars, expected generation as a line over them; the PR (sold) on hover.
    function expectedChart(id, kind, s, d) {
      const sold = byPeriod(kind, d, s.items, (p) => p.period_start, (p) => p.sold_kwh);
      const expected = byPeriod(kind, d, s.items, (p) => p.period_start, (p) => p.expected_kwh);
      const pr = byPeriod(kind, d, s.items, (p) => p.period_start, (p) => p.pr_sold);
      chart(id, [
        Object.assign({type: "bar", name: W("sold_kwh"), marker: {color: "#0b5394"}, customdata: pr.y,
          hovertemplate: "%{y:.2f} kWh<br>" + W("pr_sold") + " %{customdata:.0%}<extra></extra>"}, sold),
        Object.assign({type: "scatter", mode: "lines+markers", name: W("expected_kwh"), line: {color: "#e69138"}},
          expected),
      ], "kWh", {xaxis: categoryAxis(kind, d, id)});
    }

    function energyChart(id, kind, s, d) {
      const sold = byPeriod(kind, d, s.items, (p) => p.period_start, (p) => p.sold_kwh);
      const bought = byPeriod(kind, d, s.items, (p) => p.period_start, (p) => p.bought_kwh);
      chart(id, [
        Object.assign({type: "bar", name: W("sold_kwh"), marker: {color: "#0b5394"}}, sold),
        Object.assign({type: "bar", name: W("bought_kwh"), marker: {color: "#aab7c4"}}, bought),
      ], "kWh", {barmode: "group", xaxis: categoryAxis(kind, d, id)});
    }

    async function draw(day) {
      const year = day.slice(0, 4);
      const d = {day: day, month: monthBounds(day), year: [year + "-01-01", year + "-12-31"]};
      // A plant without a location has no expected-yield charts on its page: draw only the charts there.
      const shown = views.filter(([id]) => document.getElementById("chart-" + id));
      await Promise.all(shown.map(async ([id, url, render]) => {
        const link = document.getElementById("csv-" + id);
        // The CSV speaks the reader's language: Japanese column names on a Japanese page.
        link.href = url(d) + "&format=csv&headers=" + (window.PMS.lang === "en" ? "en" : "ja");
        try { render(await getJson(url(d)), d); } catch (error) { console.error(error); }
      }));
    }

    const picker = document.getElementById("day-picker");
    const input = document.getElementById("day");
    picker.addEventListener("submit", (event) => { event.preventDefault(); draw(input.value); });
    draw(input.value);
    setInterval(() => {
      const id = "realtime";
      const view = views.find((v) => v[0] === id);
      const d = {day: input.value};
      getJson(view[1](d)).then((s) => view[2](s, d)).catch((error) => console.error(error));
    }, window.PMS.refreshMs);
  };

  // The page says which view to start on its own script tag (the CSP runs no inline script).
  const start = document.currentScript ? document.currentScript.dataset : {};
  if (start.start === "plant") { window.PMS.startPlant(start.code); }
})();
