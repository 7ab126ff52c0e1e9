// The Data page's upload: a progress bar fed by the browser's upload progress events while the file is
// sent, then "Loading…" while the server runs the load; htmx swaps in the report when it answers.
(function () {
  "use strict";
  function parts(form) {
    var box = form.querySelector("#upload-progress");
    return box && {box: box, bar: box.querySelector("progress"), text: box.querySelector(".upload-progress-text")};
  }
  function size(bytes) {
    return bytes < 1024 ? bytes + " B" : bytes < 1048576 ? (bytes / 1024).toFixed(1) + " KB" : (bytes / 1048576).toFixed(1) + " MB";
  }
  document.addEventListener("htmx:beforeSend", function (event) {
    var progress = parts(event.detail.elt);
    if (!progress) return;
    progress.box.hidden = false;
    progress.box.dataset.state = "uploading";
    progress.bar.value = 0;
    progress.text.textContent = "Uploading…";
    var upload = event.detail.xhr.upload;
    upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      progress.bar.value = Math.round(100 * e.loaded / e.total);
      progress.text.textContent = "Uploading " + size(e.loaded) + " of " + size(e.total);
    });
    upload.addEventListener("load", function () {
      progress.bar.value = 100;
      progress.box.dataset.state = "loading";
      progress.text.textContent = "Uploaded; loading into the table…";
    });
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var progress = parts(event.detail.elt);
    if (!progress) return;
    var ok = event.detail.xhr.status < 300;
    progress.box.dataset.state = ok ? "done" : "failed";
    progress.text.textContent = ok ? "Uploaded and loaded." : "Not loaded: see below.";
  });
})();
