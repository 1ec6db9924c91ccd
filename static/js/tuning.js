/* Charts of the tuning pages (uPlot): the LR range test on a log-x axis with its suggestions
   marked, and val_loss-vs-hyperparameter scatters (log x where the range is log). */
(function () {
  "use strict";
  var MARK_COLORS = { valley: "#16a34a", steep: "#ea580c", minimum: "#9333ea" };

  function width(el) { return Math.max(300, el.clientWidth - 16); }

  // Vertical dashed lines at m.x, labelled in the band above the plot (RW.drawLabels): labels never
  // overlap each other, the curves or the tick labels.
  function marks(getList, rows) {
    return { hooks: { draw: function (u) {
      var ctx = u.ctx, items = [];
      ctx.save();
      getList().forEach(function (m) {
        var x = u.valToPos(m.x, "x", true), top = u.bbox.top, h = u.bbox.height;
        ctx.strokeStyle = m.color; ctx.lineWidth = 2; ctx.setLineDash([5, 4]);
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
        items.push({ x: x, text: m.label, color: m.color });
      });
      ctx.restore();
      RW.drawLabels(u, items, rows);
    } } };
  }

  // The loss's useful range, as fastai's plot shows it: from just under the lowest loss up to twice
  // the starting loss (the final blow-up, often 100x the start, would flatten the valley).
  var CLIP_FACTOR = 2;
  function lossRange(raw, smooth) {
    var finite = function (v) { return v != null && isFinite(v); };
    var all = raw.concat(smooth).filter(finite);
    if (!all.length) return null;
    var start = smooth.filter(finite)[0];
    var lo = Math.min.apply(null, all), hi = Math.max.apply(null, all);
    if (finite(start) && start > 0) hi = Math.min(hi, CLIP_FACTOR * start);
    if (!(hi > lo)) hi = lo + 1;
    var pad = 0.05 * (hi - lo);
    return [lo >= 0 ? Math.max(0, lo - pad) : lo - pad, hi + pad];
  }

  function lrFind(el, data) {
    var xs = [], raw = [], smooth = [];
    (data.lr || []).forEach(function (lr, i) {
      if (!(lr > 0)) return;
      xs.push(lr); raw.push(data.loss[i]); smooth.push(data.smooth[i]);
    });
    if (!xs.length) { el.classList.add("empty"); return null; }
    var list = Object.keys(data.suggestions || {}).map(function (name) {
      var s = data.suggestions[name];
      return { x: s.lr, color: MARK_COLORS[name] || "#111", label: name + " " + RW.fmtLog(Number(Number(s.lr).toPrecision(3))) };
    });
    var range = lossRange(raw, smooth), rows = Math.max(1, Math.min(list.length, 3));
    var u = new uPlot({
      width: width(el), height: 320,
      series: [{ label: "lr", value: function (u, v) { return v == null ? "" : RW.fmtLog(Number(v.toPrecision(3))); } },
               { label: "loss", stroke: "#93c5fd", width: 1 },
               { label: "smoothed loss", stroke: "#2563eb", width: 2 }],
      scales: { x: { time: false, distr: 3 }, y: range ? { range: function () { return range; } } : {} },
      axes: [{ label: "learning rate (log)", values: RW.logValues }, { label: "loss" }],
      padding: [RW.bandHeight(rows), null, null, null],
      plugins: [marks(function () { return list; }, rows)]
    }, [xs, raw, smooth], el);
    el.uplot = u;
    return u;
  }

  function scatter(el, name, p) {
    var pts = (p.points || []).filter(function (q) { return q[1] !== null && (!p.log || q[0] > 0); })
      .sort(function (a, b) { return a[0] - b[0]; });
    if (!pts.length) { el.classList.add("empty"); return null; }
    var xs = pts.map(function (q) { return q[0]; });
    var s1 = pts.map(function (q) { return q[2] === 1 ? q[1] : null; });
    var s2 = pts.map(function (q) { return q[2] === 2 ? q[1] : null; });
    var none = function () { return null; };
    var best = p.best === null || p.best === undefined ? [] :
      [{ x: p.best, color: p.border ? "#dc2626" : "#16a34a", label: p.border ? "best (on the " + p.border + " border)" : "best" }];
    var u = new uPlot({
      width: width(el), height: 240,
      series: [{ label: name },
               { label: "stage 1", stroke: "#2563eb", paths: none, points: { show: true, size: 7, fill: "#2563eb" } },
               { label: "stage 2", stroke: "#ea580c", paths: none, points: { show: true, size: 7, fill: "#ea580c" } }],
      scales: { x: { time: false, distr: p.log ? 3 : 1 } },
      axes: [p.log ? { label: name + " (log)", values: RW.logValues } : { label: name }, { label: "best val_loss" }],
      padding: [RW.bandHeight(best.length), null, null, null],
      plugins: [marks(function () { return best; }, best.length)]
    }, [xs, s1, s2], el);
    el.uplot = u;
    return u;
  }

  function sweep(params) {
    Object.keys(params).forEach(function (name) {
      var el = document.getElementById("scatter-" + name);
      if (el) scatter(el, name, params[name]);
    });
  }

  window.RWTuning = { lrFind: lrFind, scatter: scatter, sweep: sweep };
})();
