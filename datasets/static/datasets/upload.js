/* Import page: drag-and-drop upload with a progress bar (plain JS, no bundler).
 *
 * The page works without this script (a plain multipart form post, redirected to the
 * import's report). With it: files can be dropped on the zone, the selection is
 * summarised, and the upload goes by XMLHttpRequest so its progress shows; the server
 * answers {"url": <report page>} and the browser goes there.
 */
(function () {
  "use strict";

  var form = document.getElementById("upload-form");
  if (!form) return;
  var input = document.getElementById("id_files");
  var zone = document.getElementById("dropzone");
  var summary = document.getElementById("file-summary");
  var progress = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-bar");
  var percent = document.getElementById("upload-percent");
  var errorBox = document.getElementById("upload-error");
  var submit = document.getElementById("upload-submit");
  var maxFiles = parseInt(form.dataset.maxFiles || "0", 10);
  var maxFileBytes = parseInt(form.dataset.maxFileBytes || "0", 10);
  var SHOWN_NAMES = 8;

  // Units of 1024, as Django's filesizeformat shows them on the page.
  function formatBytes(n) {
    var units = ["bytes", "KB", "MB", "GB", "TB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  function describe(files) {
    summary.textContent = "";
    if (!files.length) { summary.hidden = true; return; }
    var total = 0;
    var tooBig = 0;
    for (var i = 0; i < files.length; i += 1) {
      total += files[i].size;
      if (maxFileBytes && files[i].size > maxFileBytes) tooBig += 1;
    }
    var head = document.createElement("strong");
    head.textContent = files.length + (files.length === 1 ? " file" : " files") + ", " + formatBytes(total);
    summary.appendChild(head);
    if (tooBig) {
      var warn = document.createElement("span");
      warn.className = "bad";
      warn.textContent = " · " + tooBig + " over the " + formatBytes(maxFileBytes) + " limit (they will be rejected)";
      summary.appendChild(warn);
    }
    var list = document.createElement("ul");
    for (var j = 0; j < Math.min(files.length, SHOWN_NAMES); j += 1) {
      var li = document.createElement("li");
      li.textContent = files[j].name + " (" + formatBytes(files[j].size) + ")";
      list.appendChild(li);
    }
    if (files.length > SHOWN_NAMES) {
      var more = document.createElement("li");
      more.className = "muted";
      more.textContent = "… and " + (files.length - SHOWN_NAMES) + " more";
      list.appendChild(more);
    }
    summary.appendChild(list);
    summary.hidden = false;
    if (maxFiles && files.length > maxFiles) {
      showError("That is " + files.length + " files; one upload takes at most " + maxFiles +
        ". Put them in a zip or tar archive, or upload them in parts.");
    } else {
      showError("");
    }
  }

  input.addEventListener("change", function () { describe(input.files); });

  // Keep a file dropped next to the zone from replacing the page.
  ["dragover", "drop"].forEach(function (type) {
    window.addEventListener(type, function (event) { event.preventDefault(); });
  });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "dragend"].forEach(function (type) {
    zone.addEventListener(type, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      describe(input.files);
    }
  });

  function finish(message) {
    submit.disabled = false;
    progress.hidden = true;
    showError(message);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!input.files.length) { showError("Choose or drop some files first."); return; }
    if (maxFiles && input.files.length > maxFiles) { describe(input.files); return; }
    showError("");
    submit.disabled = true;
    progress.hidden = false;
    bar.removeAttribute("value"); // indeterminate until the first progress event
    percent.textContent = "";

    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      var done = Math.round((100 * e.loaded) / e.total);
      bar.value = done;
      percent.textContent = done < 100 ? "Uploading " + done + "%" : "Uploaded; starting the import…";
    });
    xhr.addEventListener("load", function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (ignored) { body = null; }
      if (xhr.status === 201 && body && body.url) {
        window.location.assign(body.url);
      } else if (body && body.detail) {
        finish(body.detail);
      } else if (xhr.status === 413) {
        finish("The upload is too large for the server. Upload fewer files at a time.");
      } else {
        finish("The upload failed (HTTP " + xhr.status + "). Try again, or ask ops to look at the logs.");
      }
    });
    xhr.addEventListener("error", function () {
      finish("The upload was interrupted (network error). Try again.");
    });
    xhr.send(new FormData(form));
  });
})();
