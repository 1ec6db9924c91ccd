/* Run page: draw the run's curves from its JSON endpoint and poll it every second while the run
   trains (a new point shows within ~1-2 s), and after it ends until its final analysis is shown.
   A new analysis (interim or final) swaps in the diagnosis card; the elapsed time counts live. */
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script.dataset.url, analysisUrl = script.dataset.analysisUrl;
  var data = JSON.parse(document.getElementById("run-data").textContent);

  var charts = {
    train_loss: new RW.LineChart(document.getElementById("chart-train_loss"), ["train_loss"], { xLabel: "step" }),
    loss_epoch: new RW.LineChart(document.getElementById("chart-loss_epoch"), ["train_loss_epoch", "val_loss"],
                                 { xLabel: "epoch", points: true }),
    accuracy: new RW.LineChart(document.getElementById("chart-accuracy"), ["train_accuracy", "val_accuracy"],
                               { xLabel: "epoch", points: true }),
    lr: new RW.LineChart(document.getElementById("chart-lr"), ["lr"], { xLabel: "step" })
  };

  function pts(d, key) { return d.series[key] ? d.series[key].points : []; }

  // Diagnoses carry "epochs": [start, end]; on per-step charts they are placed with steps_per_epoch.
  // Only findings are marked (severity >= 0.5, the engine's FINDING); weaker notes stay in the list.
  var MARK_SEVERITY = 0.5;
  function marks(d, perStep) {
    var out = [], spe = d.steps_per_epoch || 0;
    (d.diagnoses || []).forEach(function (g) {
      if (!g.epochs || g.id === "healthy" || !(g.severity >= MARK_SEVERITY)) return;
      var a = g.epochs[0], b = g.epochs[1] == null ? g.epochs[0] : g.epochs[1];
      if (perStep) { if (!spe) return; a = a * spe; b = b * spe; }
      out.push({ x0: a, x1: b, label: g.id });
    });
    if (perStep && d.diverged_step != null) out.push({ x0: d.diverged_step, x1: d.diverged_step, label: "diverged" });
    return out;
  }

  function fmtSeconds(s) {
    s = Math.round(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? h + "h " + String(m).padStart(2, "0") + "m" : m ? m + "m " + String(r).padStart(2, "0") + "s" : r + "s";
  }

  function render(d) {
    charts.train_loss.setData([pts(d, "train_loss")], marks(d, true));
    charts.loss_epoch.setData([pts(d, "train_loss_epoch"), pts(d, "val_loss")], marks(d, false));
    charts.accuracy.setData([pts(d, "train_accuracy"), pts(d, "val_accuracy")], marks(d, false));
    charts.lr.setData([pts(d, "lr")], marks(d, true));
    var status = document.getElementById("run-status");
    status.textContent = d.status;
    status.className = "status status-" + d.status;
    var reason = document.getElementById("status-reason");  // e.g. "worker lost, retrying" while it waits
    reason.textContent = d.status_reason || "";
    reason.hidden = !d.status_reason;
    reason.className = "reason reason-" + d.status;
    document.getElementById("progress").value = d.progress;
    if (d.total_steps) {
      var text = "epoch " + d.epoch + "/" + d.epochs + " · step " + d.step + "/" + d.total_steps;
      if (d.eta_seconds != null && !d.final) text += " · ETA " + fmtSeconds(d.eta_seconds);
      document.getElementById("progress-text").textContent = text;
    }
    document.getElementById("charts").dataset.marks = marks(d, false).map(function (m) { return m.label; }).join(" ");
    document.getElementById("charts").dataset.points = Object.keys(d.series).reduce(function (n, k) {
      return n + d.series[k].points.length; }, 0);
  }

  // Elapsed time: the server's clock (data.server_time) with the browser's drift taken out.
  var clockOffset = 0, timing = data;
  function tick() {
    var el = document.getElementById("duration");
    if (!el || timing.started_at == null) return;
    var end = timing.finished_at != null ? timing.finished_at : Date.now() / 1000 + clockOffset;
    el.textContent = fmtSeconds(Math.max(0, end - timing.started_at));
    document.getElementById("duration-label").textContent = timing.final ? "duration" : "elapsed";
  }
  function setTiming(d) {
    timing = d;
    if (d.server_time != null) clockOffset = d.server_time - Date.now() / 1000;
    tick();
  }

  // The diagnosis card, swapped in whenever a newer analysis is stored.
  var shownAnalysis = data.analysed_at;
  function refreshAnalysis(d) {
    if (d.analysed_at === shownAnalysis || !analysisUrl) return;
    var wanted = d.analysed_at;
    fetch(analysisUrl, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var card = document.getElementById("recommendations");
        var box = document.createElement("div");
        box.innerHTML = html.trim();
        var fresh = box.querySelector("#recommendations");
        if (card && fresh) { card.replaceWith(fresh); shownAnalysis = wanted; }
      })
      .catch(function () { /* tried again at the next poll */ });
  }

  var FINAL_WAIT_MS = 5 * 60 * 1000;  // after the end, wait this long at most for the final analysis
  var endedAt = data.final ? Date.now() : null;
  function done(d) {
    return d.final && (d.analysis_final && d.analysed_at === shownAnalysis || Date.now() - endedAt > FINAL_WAIT_MS);
  }

  render(data);
  setTiming(data);
  var ticker = data.final ? null : setInterval(tick, 1000);
  var wasFinal = data.final;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (d) {
        render(d);
        setTiming(d);
        if (d.final && !wasFinal) { window.location.reload(); return; }  // show the reason, drop the stop button
        if (d.final && ticker) { clearInterval(ticker); ticker = null; }
        refreshAnalysis(d);
        if (!done(d)) setTimeout(poll, d.final ? 2000 : 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  if (!done(data)) setTimeout(poll, 1000);
})();
