// What the pages declare in markup instead of inline handlers, which the Content-Security-Policy refuses
// (scripts come from static files only): a <select data-submit-on-change> submits its form when a new
// option is chosen, and a <form data-confirm="…"> asks that question before it is sent.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches && select.matches("select[data-submit-on-change]") && select.form) select.form.submit();
  });
  document.addEventListener("submit", function (event) {
    var question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
