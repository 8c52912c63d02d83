// The first console page: the cross-plant list, read from the API with the operator's key and
// refreshed every 20 s without reloading the page. The key stays in this tab's sessionStorage.
"use strict";
const REFRESH_MS = 20000;
const form = document.getElementById("login");
const table = document.getElementById("plants");
const message = document.getElementById("message");

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function refresh() {
  const key = sessionStorage.getItem("pms-api-key");
  if (!key) { form.hidden = false; return; }
  const response = await fetch("/api/v1/plants?limit=1000", { headers: { Authorization: "Bearer " + key } });
  if (response.status === 401) {
    sessionStorage.removeItem("pms-api-key");
    message.textContent = "API キーが無効です / The API key was refused";
    form.hidden = false; table.hidden = true;
    return;
  }
  const page = await response.json();
  const body = table.querySelector("tbody");
  body.replaceChildren(...page.items.map((plant) => {
    const row = document.createElement("tr");
    row.dataset.serviceCode = plant.service_code;
    const sold = plant.current_sold_w === null
      ? cell("未計測 / not measured", "not-measured")
      : cell(plant.current_sold_w.toLocaleString() + " W", "num");
    row.append(cell(plant.service_code), cell(plant.customer_id), cell(plant.address), cell(plant.phone),
      sold, cell(plant.today_sold_kwh.toFixed(1) + " kWh", "num"),
      cell(plant.status, plant.status === "offline" ? "offline" : ""));
    return row;
  }));
  form.hidden = true; table.hidden = false; message.textContent = "";
  document.getElementById("updated").textContent = new Date().toLocaleTimeString();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("pms-api-key", document.getElementById("key").value);
  refresh();
});
refresh();
setInterval(refresh, REFRESH_MS);
