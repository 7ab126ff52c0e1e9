// The worksheet's editor: a textarea with the SQL highlighted (Prism, static/js/prism-sql.min.js) in a
// <pre> drawn exactly beneath it; Run sends the selection (or everything), keyboard shortcuts, the
// history's statements loaded back on click, and the failing statement selected after a run.
(function () {
  "use strict";
  var sql = document.getElementById("ws-sql");
  if (!sql) return;
  var form = document.getElementById("ws-form");
  var code = document.getElementById("ws-highlight");
  var start = document.getElementById("ws-selection-start");
  var end = document.getElementById("ws-selection-end");

  function escape(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function paint() {
    // The trailing newline keeps the <pre> as tall as the textarea when the text ends with one.
    var text = sql.value + "\n";
    code.innerHTML = window.Prism && Prism.languages.sql ? Prism.highlight(text, Prism.languages.sql, "sql") : escape(text);
    // The textarea grows with its text (the page scrolls, not the editor), so no scrollbar ever makes its
    // lines wrap differently from the <pre>'s.
    sql.style.height = "auto";
    sql.style.height = sql.scrollHeight + 2 + "px";
    syncScroll();
  }
  function syncScroll() {
    code.parentNode.scrollTop = sql.scrollTop;
    code.parentNode.scrollLeft = sql.scrollLeft;
  }
  function choose(all) {
    var selected = !all && sql.selectionEnd > sql.selectionStart;
    start.value = selected ? sql.selectionStart : "";
    end.value = selected ? sql.selectionEnd : "";
  }

  sql.addEventListener("input", paint);
  sql.addEventListener("scroll", syncScroll);
  document.getElementById("ws-run").addEventListener("click", function () { choose(false); });
  document.getElementById("ws-run-all").addEventListener("click", function () { choose(true); });
  sql.addEventListener("keydown", function (event) {
    var mod = event.ctrlKey || event.metaKey;
    if (mod && event.key === "Enter") {
      event.preventDefault();
      choose(event.shiftKey);
      form.requestSubmit(document.getElementById(event.shiftKey ? "ws-run-all" : "ws-run"));
    } else if (mod && (event.key === "s" || event.key === "S")) {
      event.preventDefault();
      form.requestSubmit(document.getElementById("ws-save"));
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".ws-load");
    if (!button) return;
    sql.value = button.dataset.sql;
    paint();
    sql.focus();
    sql.setSelectionRange(sql.value.length, sql.value.length);
  });
  document.addEventListener("htmx:afterSwap", function () {
    var failed = document.querySelector("#worksheet-results [data-error-start]");
    if (!failed) return;
    sql.focus();
    sql.setSelectionRange(+failed.dataset.errorStart, +failed.dataset.errorEnd);
  });
  if (window.Prism) { paint(); } else { window.addEventListener("load", paint); paint(); }
})();
