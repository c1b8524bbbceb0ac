// The main menu collapses behind its "Menu" button on narrow screens (decision 0045).
// Loaded right after the menu (not deferred) so a phone never sees it open first. Without
// JavaScript the menu stays open: a plain list above the page.
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
