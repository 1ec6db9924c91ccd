/* Small helpers around uPlot for Runwise pages: line charts of [step, value] series,
   joined on their x values, with evidence marks (vertical lines / bands) drawn by a hook. */
(function () {
  "use strict";
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];

  function toTable(points) {
    var xs = [], ys = [];
    (points || []).forEach(function (p) {
      var v = p[1];
      if (typeof v === "string") v = Number(v);  // "nan", "inf" -> NaN / Infinity
      xs.push(p[0]);
      ys.push(isFinite(v) ? v : null);
    });
    return [xs, ys];
  }

  function joined(list) {
    var tables = list.map(toTable);
    if (!tables.length) return [[]];
    if (tables.length === 1) return tables[0];
    return uPlot.join(tables);
  }

  // marks: [{x0, x1, label}] in x units; a single x when x0 == x1.
  function marksPlugin(getMarks) {
    return {
      hooks: {
        draw: function (u) {
          var ctx = u.ctx, marks = getMarks() || [];
          ctx.save();
          marks.forEach(function (m) {
            var a = u.valToPos(m.x0, "x", true), b = u.valToPos(m.x1, "x", true);
            var top = u.bbox.top, h = u.bbox.height;
            if (b - a > 2) { ctx.fillStyle = "rgba(234, 88, 12, 0.08)"; ctx.fillRect(a, top, b - a, h); }
            ctx.strokeStyle = "rgba(234, 88, 12, 0.9)";
            ctx.setLineDash([4, 3]);
            ctx.lineWidth = 1.5;
            ctx.beginPath(); ctx.moveTo(a, top); ctx.lineTo(a, top + h); ctx.stroke();
            ctx.fillStyle = "rgba(154, 52, 18, 1)";
            ctx.font = (12 * devicePixelRatio) + "px sans-serif";
            ctx.fillText(m.label, a + 4, top + 14 * devicePixelRatio);
          });
          ctx.restore();
        }
      }
    };
  }

  function LineChart(el, names, opts) {
    opts = opts || {};
    this.el = el;
    this.names = names;
    this.marks = [];
    var self = this;
    var width = Math.max(300, el.clientWidth - 16);
    var series = [{ label: opts.xLabel || "step" }].concat(names.map(function (n, i) {
      return { label: n, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true,
               points: { show: opts.points === true } };
    }));
    this.plot = new uPlot({
      width: width, height: opts.height || 220, series: series,
      scales: { x: { time: false }, y: { distr: opts.log ? 3 : 1 } },
      axes: [{ label: opts.xLabel || "step" }, {}],
      cursor: { drag: { x: true, y: false } },
      plugins: [marksPlugin(function () { return self.marks; })]
    }, joined(names.map(function () { return []; })), el);
    el.classList.add("rendered");
  }

  LineChart.prototype.setData = function (pointLists, marks) {
    if (marks) this.marks = marks;
    var hasData = pointLists.some(function (p) { return p && p.length; });
    this.el.classList.toggle("empty", !hasData);
    this.plot.setData(joined(pointLists.map(function (p) { return p || []; })));
  };

  window.RW = { LineChart: LineChart, COLORS: COLORS };
})();
