/* Run page of registered code: the script's last 200 lines of output, polled every second
   until the run is final. */
(function () {
  "use strict";
  var pre = document.getElementById("code-output");
  if (!pre || pre.dataset.final === "1") return;
  function atBottom() { return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 20; }
  pre.scrollTop = pre.scrollHeight;
  function poll() {
    fetch(pre.dataset.url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (d) {
        var follow = atBottom();
        if (pre.textContent !== d.output) pre.textContent = d.output;
        if (follow) pre.scrollTop = pre.scrollHeight;
        if (!d.final) setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
