/* Charts of the tuning pages (uPlot): the LR range test on a log-x axis with its suggestions
   marked, and val_loss-vs-hyperparameter scatters (log x where the range is log). */
(function () {
  "use strict";
  var MARK_COLORS = { valley: "#16a34a", steep: "#ea580c", minimum: "#9333ea" };

  function width(el) { return Math.max(300, el.clientWidth - 16); }

  function marks(getList) {
    return { hooks: { draw: function (u) {
      var ctx = u.ctx;
      ctx.save();
      getList().forEach(function (m, i) {
        var x = u.valToPos(m.x, "x", true), top = u.bbox.top, h = u.bbox.height;
        ctx.strokeStyle = m.color; ctx.lineWidth = 2; ctx.setLineDash([5, 4]);
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
        ctx.fillStyle = m.color; ctx.font = (12 * devicePixelRatio) + "px sans-serif";
        ctx.fillText(m.label, x + 4, top + (14 + 14 * i) * devicePixelRatio);
      });
      ctx.restore();
    } } };
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
      return { x: s.lr, color: MARK_COLORS[name] || "#111", label: name + " " + Number(s.lr).toPrecision(3) };
    });
    return new uPlot({
      width: width(el), height: 320,
      series: [{ label: "lr" },
               { label: "loss", stroke: "#93c5fd", width: 1 },
               { label: "smoothed loss", stroke: "#2563eb", width: 2 }],
      scales: { x: { time: false, distr: 3 } },
      axes: [{ label: "learning rate (log)" }, { label: "loss" }],
      plugins: [marks(function () { return list; })]
    }, [xs, raw, smooth], el);
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
    return new uPlot({
      width: width(el), height: 240,
      series: [{ label: name },
               { label: "stage 1", stroke: "#2563eb", paths: none, points: { show: true, size: 7, fill: "#2563eb" } },
               { label: "stage 2", stroke: "#ea580c", paths: none, points: { show: true, size: 7, fill: "#ea580c" } }],
      scales: { x: { time: false, distr: p.log ? 3 : 1 } },
      axes: [{ label: name + (p.log ? " (log)" : "") }, { label: "best val_loss" }],
      plugins: [marks(function () { return best; })]
    }, [xs, s1, s2], el);
  }

  function sweep(params) {
    Object.keys(params).forEach(function (name) {
      var el = document.getElementById("scatter-" + name);
      if (el) scatter(el, name, params[name]);
    });
  }

  window.RWTuning = { lrFind: lrFind, scatter: scatter, sweep: sweep };
})();
