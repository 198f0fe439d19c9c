// The monthly report's charts (Apache ECharts, served from static/vendor/echarts), drawn from
// the report's own tables (the JSON in #report-data: the same as GET /api/v1/reports/monthly).
// Labels come from the page (data-t-*), so the charts speak the page's language.
(function () {
  "use strict";
  var source = document.getElementById("report-data");
  if (!source || typeof echarts === "undefined") { return; }
  var report = JSON.parse(source.textContent);
  var charts = [];

  function rows(name) {
    var t = report.tables[name];
    if (!t) { return []; }
    return t.rows.map(function (row) {
      var o = {};
      t.columns.forEach(function (c, i) { o[c] = row[i]; });
      return o;
    });
  }

  function start(id) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    // SVG: crisp when printed, and no canvas to rasterise.
    var chart = echarts.init(el, null, { renderer: "svg" });
    charts.push(chart);
    return { el: el, chart: chart };
  }

  // Every day of the month on the axis, with or without cases.
  function monthDays() {
    var parts = report.month.split("-");
    var year = parseInt(parts[0], 10), month = parseInt(parts[1], 10);
    var last = new Date(Date.UTC(year, month, 0)).getUTCDate();
    var days = [];
    for (var d = 1; d <= last; d++) {
      days.push(report.month + "-" + (d < 10 ? "0" : "") + d);
    }
    return days;
  }

  var days = start("chart-days");
  if (days) {
    var t = days.el.dataset;
    var byDay = {};
    rows("cases_by_day").forEach(function (r) { byDay[r.day] = r; });
    var axis = monthDays();
    days.chart.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 40, right: 50, top: 40, bottom: 30, containLabel: true },
      xAxis: { type: "category", data: axis.map(function (d) { return d.slice(8); }) },
      yAxis: [
        { type: "value", name: t.tCases, minInterval: 1 },
        { type: "value", name: t.tMinutes, splitLine: { show: false } }
      ],
      series: [
        { name: t.tCases, type: "bar", data: axis.map(function (d) { return byDay[d] ? byDay[d].cases : 0; }) },
        { name: t.tCritical, type: "bar", data: axis.map(function (d) { return byDay[d] ? byDay[d].critical : 0; }) },
        {
          name: t.tMedian, type: "line", yAxisIndex: 1, connectNulls: true,
          data: axis.map(function (d) { return byDay[d] ? byDay[d].median_decision_to_accepted_min : null; })
        }
      ]
    });
  }

  var declines = start("chart-declines");
  if (declines) {
    var names = JSON.parse(declines.el.dataset.reasons || "{}");
    var data = rows("declines_by_reason");
    declines.chart.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      grid: { left: 10, right: 30, top: 10, bottom: 10, containLabel: true },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", inverse: true, data: data.map(function (r) { return names[r.reason] || r.reason; }) },
      series: [{ name: declines.el.dataset.tDeclines, type: "bar", data: data.map(function (r) { return r.declines; }), label: { show: true, position: "right" } }]
    });
  }

  var flows = start("chart-flows");
  if (flows) {
    var f = flows.el.dataset;
    var origins = {}, dests = {}, lines = [];
    rows("flows").forEach(function (r) {
      var o = origins[r.origin] || (origins[r.origin] = { name: r.origin, value: [r.origin_lon, r.origin_lat, 0] });
      o.value[2] += r.cases;
      if (r.destination) {
        var d = dests[r.destination] || (dests[r.destination] = { name: r.destination, value: [r.dest_lon, r.dest_lat, 0] });
        d.value[2] += r.cases;
        lines.push({ coords: [[r.origin_lon, r.origin_lat], [r.dest_lon, r.dest_lat]], value: r.cases, name: r.origin + " → " + r.destination });
      }
    });
    // The axes span the points with a margin (all points on one meridian still get a width).
    var points = Object.values(origins).concat(Object.values(dests));
    var bounds = function (i) {
      var vs = points.map(function (p) { return p.value[i]; });
      if (!vs.length) { return {}; }
      var lo = Math.min.apply(null, vs), hi = Math.max.apply(null, vs);
      var pad = Math.max(0.05, (hi - lo) * 0.1);
      return { min: +(lo - pad).toFixed(2), max: +(hi + pad).toFixed(2) };
    };
    var size = function (v) { return 8 + Math.min(24, Math.sqrt(v[2]) * 4); };
    flows.chart.setOption({
      animation: false,
      tooltip: { formatter: function (p) { return p.name + ": " + (p.value && p.value.length ? p.value[2] : p.value); } },
      legend: { top: 0 },
      grid: { left: 10, right: 20, top: 40, bottom: 10, containLabel: true },
      xAxis: Object.assign({ type: "value", scale: true, name: f.tLon }, bounds(0)),
      yAxis: Object.assign({ type: "value", scale: true, name: f.tLat }, bounds(1)),
      series: [
        { name: f.tFlows, type: "lines", coordinateSystem: "cartesian2d", data: lines,
          lineStyle: { width: 2, opacity: 0.6, curveness: 0.15 }, symbol: ["none", "arrow"] },
        { name: f.tOrigins, type: "scatter", data: Object.values(origins), symbolSize: size,
          label: { show: true, formatter: "{b}", position: "bottom" } },
        { name: f.tDestinations, type: "scatter", symbol: "diamond", data: Object.values(dests), symbolSize: size,
          label: { show: true, formatter: "{b}", position: "top" } }
      ]
    });
  }

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  window.addEventListener("beforeprint", function () { charts.forEach(function (c) { c.resize(); }); });
})();
