/* Letter preview: the recipient list follows the search box and the audience chooser as one
   types or chooses (the server sends the list as an HTML fragment); without scripts the
   form's Show button does the same. */
(function () {
  "use strict";
  var form = document.getElementById("preview-form");
  var list = document.getElementById("preview-recipients");
  if (!form || !list) { return; }
  var url = form.getAttribute("data-recipients-url");
  var timer = null;
  var latest = 0;

  function query() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (String(value) !== "") { params.append(name, String(value)); }
    });
    return params.toString();
  }

  function refresh() {
    var mine = ++latest;
    var params = query();
    fetch(url + "?" + params, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) {
        if (mine !== latest) { return; }  /* an answer to an older search */
        list.innerHTML = html;
        list.setAttribute("data-query", params);
        /* A reload or a shared link shows the same list. */
        window.history.replaceState(null, "", window.location.pathname + "?" + params);
      })
      .catch(function () { /* the Show button still works */ });
  }

  function later(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, delay);
  }

  var search = document.getElementById("preview-search");
  if (search) { search.addEventListener("input", function () { later(250); }); }
  var audience = document.getElementById("preview-audience");
  if (audience) { audience.addEventListener("change", function () { later(0); }); }
})();
