// The pre-send check's progress on a draft campaign's page: the bar and the server's own
// words ("n of N letters read"), polled; the page reloads when the check has ended.
(function () {
  var box = document.getElementById("check-running");
  if (!box) { return; }
  var bar = document.getElementById("check-bar");
  var text = document.getElementById("check-progress-text");
  function poll() {
    fetch(box.dataset.url, {headers: {"Accept": "application/json", "X-Background-Request": "poll"}, credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (p) {
        // Ended, or taken by a worker since the page was made (its words change): reload.
        if (!p.is_running || (p.is_waiting ? "1" : "0") !== box.dataset.waiting) { window.location.reload(); return; }
        bar.value = p.percent;
        bar.textContent = p.percent + "%";
        text.textContent = p.text;
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
})();
