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

  // Log-axis tick labels: 1e-7, 3e-6, 0.001, 0.5, 20 (uPlot's default shows every value below 1e-3 as "0").
  function fmtLog(v) {
    if (v == null) return "";
    var a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e-3 && a < 1e4) return String(Number(v.toPrecision(3)));
    return v.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
  }
  function logValues(u, splits) { return splits.map(fmtLog); }

  // Annotation labels go in a band above the plotting area, in rows, so they never sit over the
  // curves or the tick labels; a label that would overlap another moves to the next row, one that
  // would run past the right edge is drawn left of its line. ROW and PAD in CSS pixels.
  var ROW = 16, PAD = 6;
  function bandHeight(rows) { return rows ? PAD + rows * ROW : 10; }
  // items: [{x: canvas px, text, color}]; returns the boxes drawn (canvas px), and in .rows the
  // rows the labels need (more than `rows` when the band is too low: the caller makes it taller).
  function drawLabels(u, items, rows) {
    var ctx = u.ctx, dpr = devicePixelRatio, placed = [], needed = 0;
    var right = u.bbox.left + u.bbox.width, left = u.bbox.left;
    ctx.save();
    ctx.font = (12 * dpr) + "px sans-serif";
    ctx.textBaseline = "alphabetic";
    items.slice().sort(function (a, b) { return a.x - b.x; }).forEach(function (m) {
      var w = ctx.measureText(m.text).width, gap = 4 * dpr;
      var x0 = m.x + gap;
      if (x0 + w > right) x0 = Math.max(left, m.x - gap - w);
      var row = 0;
      while (placed.some(function (p) { return p.row === row && x0 < p.x1 + gap && x0 + w + gap > p.x0; })) row++;
      needed = Math.max(needed, row + 1);
      placed.push({ row: row, x0: x0, x1: x0 + w, text: m.text, color: m.color });
    });
    placed.forEach(function (p) {
      var baseline = u.bbox.top - (PAD / 2 + (rows - 1 - Math.min(p.row, rows - 1)) * ROW + 3) * dpr;
      ctx.fillStyle = p.color;
      ctx.fillText(p.text, p.x0, baseline);
    });
    ctx.restore();
    placed.rows = needed;
    return placed;
  }

  // marks: [{x0, x1, label}] in x units; a single x when x0 == x1.
  function marksPlugin(getMarks, rowsOf, setRows) {
    return {
      hooks: {
        draw: function (u) {
          var ctx = u.ctx, marks = getMarks() || [], labels = [];
          ctx.save();
          marks.forEach(function (m) {
            var a = u.valToPos(m.x0, "x", true), b = u.valToPos(m.x1, "x", true);
            var top = u.bbox.top, h = u.bbox.height;
            if (b - a > 2) { ctx.fillStyle = "rgba(234, 88, 12, 0.08)"; ctx.fillRect(a, top, b - a, h); }
            ctx.strokeStyle = m.color || "rgba(234, 88, 12, 0.9)";
            ctx.setLineDash([4, 3]);
            ctx.lineWidth = 1.5;
            ctx.beginPath(); ctx.moveTo(a, top); ctx.lineTo(a, top + h); ctx.stroke();
            labels.push({ x: a, text: m.label, color: m.color || "rgba(154, 52, 18, 1)" });
          });
          ctx.restore();
          var needed = drawLabels(u, labels, rowsOf()).rows;
          if (needed !== rowsOf()) setRows(needed);  // a band as high as the labels' rows, then drawn again
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
    this.rows = 0;
    this.plot = new uPlot({
      width: width, height: opts.height || 220, series: series,
      scales: { x: { time: false }, y: { distr: opts.log ? 3 : 1 } },
      axes: [{ label: opts.xLabel || "step" }, opts.log ? { values: logValues } : {}],
      padding: [function () { return bandHeight(self.rows); }, null, null, null],
      cursor: { drag: { x: true, y: false } },
      plugins: [marksPlugin(function () { return self.marks; }, function () { return self.rows; },
                            function (rows) { self.setRows(rows); })]
    }, joined(names.map(function () { return []; })), el);
    el.uplot = this.plot;
    el.classList.add("rendered");
  }

  // Room above the plot for the labels' rows (the padding reads this.rows); the resize redraws.
  LineChart.prototype.setRows = function (rows) {
    if (rows === this.rows) return;
    this.rows = rows;
    var plot = this.plot;
    setTimeout(function () { plot.setSize({ width: plot.width, height: plot.height }); }, 0);
  };

  LineChart.prototype.setData = function (pointLists, marks) {
    if (marks) this.marks = marks;
    // A first guess (one row a label, at most 3); the draw hook then sets the rows the labels need.
    if (!this.marks.length) this.setRows(0);
    else if (!this.rows) this.setRows(Math.min(this.marks.length, 3));
    var hasData = pointLists.some(function (p) { return p && p.length; });
    this.el.classList.toggle("empty", !hasData);
    this.plot.setData(joined(pointLists.map(function (p) { return p || []; })));
  };

  window.RW = { LineChart: LineChart, COLORS: COLORS, fmtLog: fmtLog, logValues: logValues,
                drawLabels: drawLabels, bandHeight: bandHeight };
})();
