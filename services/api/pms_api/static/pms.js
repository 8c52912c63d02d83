// Loaded first by every console page: the page's settings (language, words, refresh interval) come
// from a JSON block the server wrote, since the Content-Security-Policy runs no inline script; and
// forms marked data-confirm ask before they are sent (no inline onsubmit handlers either).
(function () {
  "use strict";
  const config = document.getElementById("pms-config");
  window.PMS = JSON.parse(config ? config.textContent : "{}");
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  }, true);
})();
