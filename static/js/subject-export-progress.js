(function () {
  var box = document.getElementById("export-progress");
  var bar = document.getElementById("bar");
  var text = document.getElementById("progress-text");
  function poll() {
    fetch(box.dataset.url, {headers: {"Accept": "application/json", "X-Background-Request": "poll"}, credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (p) {
        if (!p.is_running) { window.location.reload(); return; }
        bar.value = p.percent;
        bar.textContent = p.percent + "%";
        text.textContent = p.text;
        window.setTimeout(poll, 700);
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 300);
})();
