/* Compare page: one chart per metric, one line per run, overlaid. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("compare-data").textContent);
  var names = data.runs.map(function (r) { return "#" + r.id + " " + r.name; });
  ["val_loss", "val_accuracy", "train_loss_epoch", "train_loss"].forEach(function (key) {
    var el = document.getElementById("chart-" + key);
    var perRun = data.series[key] || {};
    var chart = new RW.LineChart(el, names, { xLabel: key === "train_loss" ? "step" : "epoch", points: key !== "train_loss" });
    chart.setData(data.runs.map(function (r) { return perRun[r.id] || []; }));
  });
})();
