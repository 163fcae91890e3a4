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
