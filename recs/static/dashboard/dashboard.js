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
