(function () {
  var box = document.getElementById("import-progress");
  var bar = document.getElementById("bar");
  var text = document.getElementById("progress-text");
  function poll() {
    fetch(box.dataset.url, {headers: {"Accept": "application/json", "X-Background-Request": "poll"}, credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (p) {
        if (p.is_done) { window.location.reload(); return; }
        bar.value = p.percent;
        bar.textContent = p.percent + "%";
        if (p.total_lines) {
          text.textContent = "Line " + p.done_lines + " of " + p.total_lines + ": imported " +
            p.imported + ", updated " + p.updated + ", skipped " + p.skipped + ", rejected " + p.rejected;
        }
        window.setTimeout(poll, 700);
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 300);
})();
