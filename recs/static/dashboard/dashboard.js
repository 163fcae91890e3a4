// The dashboard's few behaviours, bound from here: its Content-Security-Policy runs no inline script or
// handler (config/settings.py), so markup injected into a page could not run code either.
(function () {
  "use strict";

  // <select data-autosubmit>: choosing an option submits its form (shop switcher, event filter).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // The API key shown once: select it on focus, copy it with the button.
  var rawKey = document.getElementById("raw-key");
  var copyButton = document.getElementById("copy-key");
  if (rawKey) {
    rawKey.addEventListener("focus", function () { rawKey.select(); });
  }
  if (rawKey && copyButton) {
    copyButton.addEventListener("click", function () {
      var note = document.getElementById("copied");
      var done = function () { note.textContent = "Copied to the clipboard."; };
      rawKey.select();
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(rawKey.value).then(done); }
      else if (document.execCommand("copy")) { done(); }
    });
  }

  // While a run is in flight (#live with data-live="1"), re-fetch the page every 3 s and swap in the
  // #live region; reload once it ends.
  var live = document.getElementById("live");
  if (live && live.dataset.live === "1") {
    var poll = function () {
      fetch(location.href, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (!fresh || fresh.dataset.live !== "1") { location.reload(); return; }
        document.getElementById("live").replaceWith(fresh);
        setTimeout(poll, 3000);
      }).catch(function () { setTimeout(poll, 10000); });
    };
    setTimeout(poll, 3000);
  }
})();

// Rule, boost and promotion forms (recs/dashboard/rules_forms.py): only the chosen kind's fields show, and
// condition rows are added and removed here. Without this script every field shows and one blank row follows
// the filled ones; the server reads the same names either way.
(function () {
  "use strict";

  var kind = document.querySelector("#rule-form select[name=kind]");
  if (kind) {
    var showKind = function () {
      document.querySelectorAll("#rule-form [data-kinds]").forEach(function (section) {
        section.hidden = section.dataset.kinds.split(" ").indexOf(kind.value) < 0;
      });
    };
    kind.addEventListener("change", showKind);
    showKind();
  }

  // The settings' "Days" box matters only when the products they had are skipped for some days.
  var consumed = document.getElementById("id_consumed");
  var days = document.getElementById("consumed-days");
  if (consumed && days) {
    var showDays = function () { days.hidden = consumed.value !== "days"; };
    consumed.addEventListener("change", showDays);
    showDays();
  }

  var renumber = function (box) {
    var name = box.dataset.condRows;
    box.querySelectorAll("[data-cond-row]").forEach(function (row, i) {
      row.querySelectorAll("[data-part]").forEach(function (input) {
        input.name = name + "-" + i + "-" + input.dataset.part;
      });
      row.querySelector(".cond-and").textContent = i === 0 ? "where" : "and";
    });
    var add = document.querySelector('[data-add-row="' + name + '"]');
    if (add) { add.hidden = box.querySelectorAll("[data-cond-row]").length >= Number(box.dataset.max); }
  };
  // The attribute box shows beside "Attribute…" only.
  var showKey = function (row) {
    var key = row.querySelector("[data-part=key]");
    key.hidden = row.querySelector("[data-part=field]").value !== "attributes";
  };
  var bindRow = function (box, row) {
    showKey(row);
    row.querySelector("[data-part=field]").addEventListener("change", function () { showKey(row); });
    var remove = row.querySelector("[data-remove-row]");
    if (!remove) { return; }
    remove.hidden = false;
    remove.addEventListener("click", function () {
      if (box.querySelectorAll("[data-cond-row]").length > 1) { row.remove(); }
      else { row.querySelectorAll("input").forEach(function (input) { input.value = ""; }); row.querySelector("[data-part=field]").value = ""; showKey(row); }
      renumber(box);
    });
  };
  document.querySelectorAll("[data-cond-rows]").forEach(function (box) {
    var rows = box.querySelectorAll("[data-cond-row]");
    rows.forEach(function (row) { bindRow(box, row); });
    // The server adds a blank row for browsers without this script; with it, rows are added on demand.
    var last = rows[rows.length - 1];
    var blank = last && !last.querySelector("[data-part=field]").value && !last.querySelector("[data-part=value]").value;
    if (blank && rows.length > 1) { last.remove(); }
    var add = document.querySelector('[data-add-row="' + box.dataset.condRows + '"]');
    if (add) {
      add.addEventListener("click", function () {
        var template = box.querySelector("[data-cond-row]");
        var row = template.cloneNode(true);
        row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
        row.querySelector("[data-part=field]").value = "";
        row.querySelector("[data-part=field]").removeAttribute("id");
        row.querySelector("[data-part=op]").value = "eq";
        box.appendChild(row);
        bindRow(box, row);
        renumber(box);
        row.querySelector("[data-part=field]").focus();
      });
    }
    renumber(box);
  });
})();

// Imports page (recs/dashboard/imports.py): the upload goes by XMLHttpRequest so that its bytes can be
// counted, then the job's progress (the job's own progress field, as JSON) is followed until it ends; so
// are the jobs the page lists as queued or running. Without this script the form posts and the page
// reloads with the new job in the list.
(function () {
  "use strict";

  var setBar = function (container, fraction) {
    var pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    var bar = container.querySelector("[role=progressbar]");
    if (bar) { bar.setAttribute("aria-valuenow", String(pct)); }
    var fill = container.querySelector(".progress-fill");
    if (fill) { fill.style.width = pct + "%"; }
    var label = container.querySelector(".progress-label");
    if (label) { label.textContent = pct + "%"; }
  };
  var number = function (n) { return Number(n).toLocaleString("en-US"); };
  var BADGES = {succeeded: "badge green", failed: "badge red", running: "badge blue", queued: "badge"};

  var showJob = function (row, job) {
    row.dataset.status = job.status;
    var badge = document.createElement("span");
    badge.className = BADGES[job.status] || "badge";
    badge.textContent = job.status_label;
    if (job.error_message) { badge.title = job.error_message; }
    row.querySelector("[data-cell=status]").replaceChildren(badge);
    var cell = row.querySelector("[data-cell=progress]");
    setBar(cell, job.progress);
    var fill = cell.querySelector(".progress-fill");
    fill.classList.toggle("done", job.status === "succeeded");
    fill.classList.toggle("failed", job.status === "failed");
    var error = cell.querySelector(".import-error");
    if (error) { error.textContent = job.error_message; error.hidden = !job.error_message; }
    row.querySelector("[data-cell=rows_ok]").textContent = number(job.rows_ok);
    row.querySelector("[data-cell=rows_duplicate]").textContent = number(job.rows_duplicate);
    row.querySelector("[data-cell=rows_failed]").textContent = number(job.rows_failed);
  };

  // Follows one job until it ends; `onState` sees every state.
  var follow = function (url, onState) {
    var poll = function () {
      fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (job) { onState(job); if (!job.ended) { setTimeout(poll, 1000); } })
        .catch(function () { setTimeout(poll, 5000); });
    };
    poll();
  };

  document.querySelectorAll("tr[data-import]").forEach(function (row) {
    if (row.dataset.status === "queued" || row.dataset.status === "running") {
      follow(row.dataset.import, function (job) { showJob(row, job); });
    }
  });

  var form = document.getElementById("upload-form");
  if (!form || !window.FormData) { return; }
  var status = document.getElementById("upload-status");
  var text = document.getElementById("upload-text");
  var submit = document.getElementById("upload-submit");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    status.hidden = false;
    submit.disabled = true;
    setBar(status, 0);
    text.textContent = "Uploading…";
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        setBar(status, e.loaded / e.total);
        text.textContent = "Uploading: " + number(e.loaded) + " of " + number(e.total) + " bytes.";
      }
    });
    xhr.addEventListener("load", function () {
      var answer = null;
      try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = null; }
      if (xhr.status !== 202 || !answer) {
        submit.disabled = false;
        status.querySelector(".progress-fill").classList.add("failed");
        var detail = answer && answer.errors && Object.keys(answer.errors).map(function (name) {
          return answer.errors[name].map(function (e) { return e.message; }).join(" ");
        }).join(" ");
        text.textContent = "Not uploaded: " + ((answer && (detail || answer.error)) || "the server answered " + xhr.status + ".");
        return;
      }
      text.textContent = "Uploaded: import #" + answer.id + " is queued.";
      setBar(status, 0);
      follow(answer.progress_url, function (job) {
        setBar(status, job.progress);
        var rows = number(job.rows_ok) + " rows stored, " + number(job.rows_duplicate) + " already there, " + number(job.rows_failed) + " failed";
        if (job.status === "succeeded") { text.textContent = "Import #" + job.id + " succeeded: " + rows + "."; }
        else if (job.status === "failed") { text.textContent = "Import #" + job.id + " failed: " + job.error_message; }
        else { text.textContent = "Import #" + job.id + " is " + job.status + ": " + rows + " so far."; }
        status.querySelector(".progress-fill").classList.toggle("done", job.status === "succeeded");
        status.querySelector(".progress-fill").classList.toggle("failed", job.status === "failed");
        if (job.ended) { submit.disabled = false; form.querySelector("[type=file]").value = ""; }
      });
    });
    xhr.addEventListener("error", function () {
      submit.disabled = false;
      text.textContent = "Not uploaded: the connection failed.";
    });
    xhr.send(new FormData(form));
  });
})();

// <button data-copy="ID">: copies the value of the field #ID (the Store connections page's webhook URL) and
// says so in [data-copied="ID"].
(function () {
  "use strict";
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.dataset.copy);
    var note = document.querySelector('[data-copied="' + button.dataset.copy + '"]');
    if (!field) { return; }
    field.addEventListener("focus", function () { field.select(); });
    button.addEventListener("click", function () {
      var done = function () { if (note) { note.textContent = "Copied to the clipboard."; } };
      field.select();
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(field.value).then(done); }
      else if (document.execCommand("copy")) { done(); }
    });
  });
})();
