// The bulk edit page: poll the job's progress until it is done, then show the result.
(function () {
  var box = document.getElementById("bulk-progress");
  if (!box) return;
  var bar = document.getElementById("bulk-bar");
  var text = document.getElementById("bulk-progress-text");
  function poll() {
    fetch(box.dataset.url, {headers: {"Accept": "application/json", "X-Background-Request": "poll"}, credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (p) {
        if (p.is_done) { window.location.reload(); return; }
        bar.value = p.percent;
        bar.textContent = p.percent + "%";
        text.textContent = p.message;
        window.setTimeout(poll, 700);
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 300);
})();
