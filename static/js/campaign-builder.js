/* Campaign builder: the audience count updates as lists and segments are ticked.
   The words it may show come from the page (data- attributes), in the page's language. */
(function () {
  "use strict";
  var form = document.getElementById("campaign-form");
  var out = document.getElementById("audience-count");
  if (!form || !out) { return; }
  var url = form.getAttribute("data-count-url");
  var timer = null;
  var latest = 0;

  function update() {
    var data = new FormData(form);
    var mine = ++latest;
    fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: {"X-CSRFToken": String(data.get("csrf_token") || ""), "Accept": "application/json"}
    }).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (result) {
      if (mine !== latest) { return; }  /* an answer to an older change */
      out.classList.toggle("error-text", !result.ok);
      out.textContent = result.ok ? result.body.text
        : (result.body.error || out.getAttribute("data-count-failed"));
    }).catch(function () {
      if (mine === latest) { out.textContent = out.getAttribute("data-update-failed"); }
    });
  }

  form.addEventListener("change", function (event) {
    var name = event.target && event.target.name;
    if (name !== "include" && name !== "exclude") { return; }
    window.clearTimeout(timer);
    timer = window.setTimeout(update, 150);
  });
})();
