/* Live count: posts the builder form to the count endpoint as it changes. */
(function () {
  "use strict";
  var form = document.getElementById("segment-form");
  var out = document.getElementById("live-count");
  if (!form || !out) { return; }
  var url = form.getAttribute("data-count-url");
  var timer = null;
  var latest = 0;

  function show(count, summary) {
    out.classList.remove("error-text");
    out.textContent = "";
    var strong = document.createElement("strong");
    strong.textContent = String(count);
    out.appendChild(strong);
    out.appendChild(document.createTextNode(
      " contact" + (count === 1 ? "" : "s") + " match now" + (summary ? ": " + summary : ".")));
  }

  function update() {
    var data = new FormData(form);
    data.delete("action");
    var mine = ++latest;
    fetch(url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: {"X-CSRFToken": String(data.get("csrf_token") || ""), "Accept": "application/json"}
    }).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (result) {
      if (mine !== latest) { return; }  /* an answer to an older edit */
      if (result.ok) {
        show(result.body.count, result.body.summary);
      } else {
        out.classList.add("error-text");
        out.textContent = result.body.error || "The count could not be worked out.";
      }
    }).catch(function () {
      if (mine === latest) { out.textContent = "The count could not be updated."; }
    });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(update, 250);
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", function (event) {
    var target = event.target;
    if (target.classList && target.classList.contains("cond-field")) {
      var value = target.closest("tr").querySelector(".cond-value");
      var list = document.getElementById("choices-" + target.value);
      if (list) { value.setAttribute("list", list.id); } else { value.removeAttribute("list"); }
    }
    schedule();
  });
})();
