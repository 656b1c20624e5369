// datapact dashboard: live numbers and trace progress without reloading. Everything else works
// without this script. No third-party code; served from the binary.
(function () {
  "use strict";

  function poll(url, every, handle) {
    var stopped = false;
    function tick() {
      if (stopped) return;
      fetch(url, { credentials: "same-origin", headers: { "accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data && handle(data) === false) { stopped = true; } })
        .catch(function () { /* the next tick retries */ })
        .then(function () { if (!stopped) setTimeout(tick, every); });
    }
    tick();
  }

  function set(name, text) {
    var node = document.querySelector('[data-live="' + name + '"]');
    if (node && text !== null && text !== undefined && node.textContent !== String(text)) node.textContent = String(text);
  }

  var live = document.querySelector("[data-live-source]");
  if (live) {
    var last = null;
    poll(live.getAttribute("data-live-source"), 2000, function (data) {
      if (last && data.at_ms > last.at_ms) {
        var seconds = (data.at_ms - last.at_ms) / 1000;
        set("requests-per-second", ((data.requests_total - last.requests_total) / seconds).toFixed(1));
        set("records-per-second", ((data.records_total - last.records_total) / seconds).toFixed(1));
      }
      last = data;
      set("records_today", data.records_today);
      set("records_month", data.records_month);
      set("violations_month", data.violations_month);
    });
  }

  var status = document.querySelector("[data-poll]");
  if (status && status.getAttribute("data-state") === "running") {
    poll(status.getAttribute("data-poll"), 1000, function (data) {
      if (data.state !== "running") { window.location.reload(); return false; }
      var stage = status.querySelector("[data-stage]");
      if (stage) stage.textContent = data.stage + " (" + Math.round(data.elapsed_ms / 1000) + " s so far)";
      return true;
    });
  }
})();
