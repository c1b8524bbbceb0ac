(function () {
  var box = document.getElementById("export-progress");
  var bar = document.getElementById("bar");
  var text = document.getElementById("progress-text");
  function ended() {
    // Signed out (the session expired): asking again would never answer; say so and stop.
    text.textContent = box.dataset.sessionEnded;
    text.setAttribute("role", "alert");
  }
  function poll() {
    fetch(box.dataset.url, {headers: {"Accept": "application/json", "X-Background-Request": "poll"}, credentials: "same-origin"})
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (response.redirected || response.status === 401 || response.status === 403 || type.indexOf("json") === -1) {
          ended();
          return null;
        }
        return response.json();
      })
      .then(function (p) {
        if (p === null) { return; }
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
