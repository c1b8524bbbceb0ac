/* Campaign progress: polls the ledger's figures and updates the page until sending ends. */
(function () {
  "use strict";
  var box = document.getElementById("campaign-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-url");
  var bar = document.getElementById("p-bar");
  var status = document.getElementById("p-status");
  var reason = document.getElementById("p-reason");
  var note = document.getElementById("p-nojs");
  var INTERVAL = 1500;
  if (note) { note.hidden = true; }

  function setText(selector, value) {
    var nodes = box.querySelectorAll(selector);
    for (var i = 0; i < nodes.length; i++) { nodes[i].textContent = String(value); }
  }

  function render(p) {
    bar.max = Math.max(p.total, 1);
    bar.value = p.processed;
    bar.textContent = p.percent + "%";
    ["processed", "total", "percent", "sent", "deferred", "failed", "bounced", "suppressed",
     "in_doubt", "cancelled", "queued", "remaining", "eta"].forEach(function (key) {
      setText('[data-figure="' + key + '"]', p[key]);
    });
    // Numbers in the page's language ("0,50" in French and Russian), as the server writes them.
    const locale = document.documentElement.lang || undefined;
    const decimals = (value, digits) => value.toLocaleString(locale, {minimumFractionDigits: digits, maximumFractionDigits: digits});
    setText('[data-figure="rate_per_second"]', decimals(p.rate_per_second, 2));
    setText('[data-figure="rate_per_minute"]', decimals(p.rate_per_minute, 1));
    Object.keys(p.counts).forEach(function (key) {
      var meter = box.querySelector('[data-count-of="' + key + '"]');
      if (meter) { meter.max = Math.max(p.total, 1); meter.value = p.counts[key]; }
      setText('[data-count-text="' + key + '"]', p.counts[key]);
    });
    status.textContent = p.status_label;  /* the label in the page's language, never the code */
    status.className = "campaign-status-" + p.status;
    reason.textContent = p.status_reason ? "— " + p.status_reason : "";
    var actions = box.querySelectorAll("[data-show-when]");
    for (var i = 0; i < actions.length; i++) {
      var when = actions[i].getAttribute("data-show-when").split(" ");
      actions[i].hidden = when.indexOf(p.status) < 0;
    }
  }

  function poll() {
    fetch(url, {headers: {"Accept": "application/json", "X-Background-Request": "poll"}, credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (p) {
        render(p);
        if (!p.is_ended) { window.setTimeout(poll, INTERVAL); }
      })
      .catch(function () { window.setTimeout(poll, INTERVAL * 3); });
  }

  if (box.getAttribute("data-ended") !== "true") { window.setTimeout(poll, INTERVAL); }
})();
