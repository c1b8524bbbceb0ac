// The main menu is open on wide screens and behind its "Menu" button on narrow ones
// (decision 0045). The page draws it closed, so without JavaScript a phone starts with the
// page and the button opens the menu; loaded right after the menu (not deferred), this
// opens it on a wide screen before the first paint.
(function () {
  "use strict";
  var menu = document.getElementById("menu");
  if (!menu || !window.matchMedia) {
    return;
  }
  var narrow = window.matchMedia("(max-width: 700px)");
  function follow() {
    menu.open = !narrow.matches;
  }
  follow();
  if (narrow.addEventListener) {
    narrow.addEventListener("change", follow);
  }
})();
