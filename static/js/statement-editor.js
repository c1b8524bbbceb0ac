/* Statement editor: a toolbar for the marks letters use, and the letter as its reader will
   see it beside the text, rendered by the server as one types (debounced). The words shown
   come from the page (data- attributes), in the page's language. */
(function () {
  "use strict";
  var DELAY = 400;
  /* A language tag as the server accepts it (en, pt-BR, sr-Latn): no request before. */
  var TAG = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/;
  var reader = document.getElementById("live-reader");
  var readerField = document.getElementById("live-reader-field");
  if (readerField) { readerField.hidden = false; }

  /* --- toolbar --------------------------------------------------------------------- */

  function replaceSelection(area, before, inner, after, selectInner) {
    var start = area.selectionStart, end = area.selectionEnd;
    area.focus();
    area.setRangeText(before + inner + after, start, end, "end");
    if (selectInner) {
      area.setSelectionRange(start + before.length, start + before.length + inner.length);
    }
  }

  function nextFootnote(text) {
    var used = {}, match, pattern = /\[\^(\d+)\]/g;
    while ((match = pattern.exec(text)) !== null) { used[match[1]] = true; }
    var n = 1;
    while (used[String(n)]) { n += 1; }
    return n;
  }

  function mark(area, kind) {
    var selected = area.value.slice(area.selectionStart, area.selectionEnd);
    if (kind === "bold") {
      replaceSelection(area, "**", selected || "…", "**", true);
    } else if (kind === "italic") {
      replaceSelection(area, "*", selected || "…", "*", true);
    } else if (kind === "link") {
      replaceSelection(area, "[" + (selected || "…") + "](", "https://", ")", true);
    } else if (kind === "list") {
      var lines = (selected || "…").split("\n").map(function (line) {
        return /^\s*([-*+]|\d+\.)\s/.test(line) ? line : "- " + line;
      });
      var start = area.selectionStart;
      var lead = start > 0 && area.value.charAt(start - 1) !== "\n" ? "\n" : "";
      replaceSelection(area, lead, lines.join("\n"), "\n", false);
    } else if (kind === "footnote") {
      var n = nextFootnote(area.value);
      var end = area.selectionEnd;
      area.focus();
      area.setRangeText("[^" + n + "]", end, end, "end");
      /* The definition goes at the end, where footnotes are written; the caret follows it
         so that the note can be typed at once. */
      area.value = area.value.replace(/\s+$/, "") + "\n\n[^" + n + "]: ";
      area.setSelectionRange(area.value.length, area.value.length);
    }
    area.dispatchEvent(new Event("input", {bubbles: true}));
  }

  Array.prototype.forEach.call(document.querySelectorAll(".editor-toolbar"), function (bar) {
    var area = document.getElementById(bar.getAttribute("data-target"));
    if (!area || typeof area.setRangeText !== "function") { return; }
    bar.hidden = false;
    bar.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-mark]");
      if (button) { mark(area, button.getAttribute("data-mark")); }
    });
  });

  /* --- live letter ----------------------------------------------------------------- */

  function liveEditor(form) {
    var pane = form.querySelector(".live-letter");
    var url = form.getAttribute("data-live-url");
    if (!pane || !url || !window.fetch) { return; }
    pane.hidden = false;
    var status = pane.querySelector(".live-status");
    var holder = pane.querySelector(".live-frame");
    var list = pane.querySelector(".live-problems");
    var timer = null, latest = 0;

    function language() {
      var field = form.getAttribute("data-language-field");
      if (field) {
        var input = document.getElementById(field);
        return input ? input.value : "";
      }
      return form.getAttribute("data-language") || "";
    }

    /* Shown: the pane is on screen (the "Add a language" form is inside a closed
       <details> until opened). */
    function open() {
      var box = form.closest("details");
      return !box || box.open;
    }

    function say(text, failed) {
      status.textContent = text;
      status.classList.toggle("error-text", Boolean(failed));
    }

    function showFrame(src) {
      /* A new frame each time: changing a frame's address would fill the history. */
      var frame = document.createElement("iframe");
      frame.setAttribute("sandbox", "");
      frame.setAttribute("title", pane.getAttribute("data-frame-title"));
      frame.className = "live-frame-letter";
      frame.src = src;
      holder.textContent = "";
      holder.appendChild(frame);
    }

    function showProblems(problems) {
      list.textContent = "";
      problems.forEach(function (problem) {
        var item = document.createElement("li");
        item.className = "problem-" + problem.severity;
        item.setAttribute("data-code", problem.code);
        item.textContent = problem.text;
        list.appendChild(item);
      });
    }

    function update() {
      window.clearTimeout(timer);
      var tag = language().trim();
      if (!TAG.test(tag)) {  /* a new translation: no letter until its language is typed */
        ++latest;
        say("", false);
        return;
      }
      var mine = ++latest;
      var data = new FormData();
      var token = form.querySelector("input[name=csrf_token]");
      data.append("csrf_token", token ? token.value : "");
      data.append("pane", pane.id);
      data.append("language", tag);
      var subject = form.querySelector("[name=subject]");
      data.append("subject", subject ? subject.value : "");
      data.append("body", form.querySelector("textarea[name=body]").value);
      data.append("contact", reader ? reader.value : "");
      say(pane.getAttribute("data-updating"), false);
      fetch(url, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: {"X-CSRFToken": token ? token.value : "", "Accept": "application/json"}
      }).then(function (response) {
        return response.json();
      }).then(function (result) {
        if (mine !== latest) { return; }  /* an answer to older text */
        if (!result.ok) {
          say(result.error || pane.getAttribute("data-failed"), !result.retry);
          /* Too many updates, or the previous one still drawing: try again when told. */
          if (result.retry) { later(result.retry * 1000); }
          return;
        }
        showFrame(result.frame);
        showProblems(result.problems || []);
        var count = result.problems ? result.problems.length : 0;
        say(pane.getAttribute(count ? "data-updated" : "data-no-problems"), false);
      }).catch(function () {
        if (mine === latest) { say(pane.getAttribute("data-failed"), true); }
      });
    }

    function later(delay) {
      window.clearTimeout(timer);
      timer = window.setTimeout(update, typeof delay === "number" ? delay : DELAY);
    }

    form.addEventListener("input", function () { later(); });
    /* Another reader: only the panes on screen draw again (a closed one when opened). */
    if (reader) { reader.addEventListener("change", function () { if (open()) { later(); } }); }
    var box = form.closest("details");
    if (box) { box.addEventListener("toggle", function () { if (box.open) { later(); } }); }
    if (!form.getAttribute("data-language-field")) { update(); }
  }

  Array.prototype.forEach.call(document.querySelectorAll("form.live-editor"), liveEditor);
})();
