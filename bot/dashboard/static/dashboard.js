// Dashboard charts with the vendored ECharts: the data comes from the page's
// <script type="application/json" id="chart-data"> (no inline code, so a strict CSP holds).
(function () {
  "use strict";
  var node = document.getElementById("chart-data");
  if (!node || typeof echarts === "undefined") { return; }
  var data = JSON.parse(node.textContent);
  var charts = [];

  function pct(v) { return v === null || v === undefined ? data.labels.no_data : Math.round(v * 1000) / 10 + " %"; }

  data.kpis.forEach(function (k) {
    var el = document.getElementById("chart-" + k.key);
    if (!el) { return; }
    var chart = echarts.init(el, null, {renderer: "svg"});
    chart.setOption({
      title: {text: k.title, left: "center", textStyle: {fontSize: 15}},
      tooltip: {trigger: "axis", valueFormatter: pct},
      grid: {left: 56, right: 24, top: 48, bottom: 56},
      xAxis: {type: "category", data: data.periods, axisLabel: {fontSize: 12}},
      yAxis: {type: "value", min: 0, max: 1, axisLabel: {formatter: function (v) { return Math.round(v * 100) + "%"; }}},
      series: [{type: "bar", name: k.title, data: k.values, itemStyle: {color: "#0b6e4f"},
                label: {show: data.periods.length <= 14, position: "top", fontSize: 11,
                        formatter: function (p) { return p.value === null ? "" : Math.round(p.value * 100) + "%"; }}}]
    });
    charts.push(chart);
  });

  var fel = document.getElementById("chart-funnel");
  if (fel) {
    var f = echarts.init(fel, null, {renderer: "svg"});
    f.setOption({
      title: {text: data.funnel.title, left: "center", textStyle: {fontSize: 15}},
      tooltip: {trigger: "axis", axisPointer: {type: "shadow"},
                formatter: function (ps) { var p = ps[0]; var s = data.funnel.steps[p.dataIndex];
                  return s.label + ": " + s.reached + (s.rate === null ? "" : "<br>" + data.labels.handed_on + " " + pct(s.rate)); }},
      grid: {left: 120, right: 48, top: 48, bottom: 24},
      xAxis: {type: "value", minInterval: 1},
      yAxis: {type: "category", inverse: true, data: data.funnel.steps.map(function (s) { return s.label; }),
              axisLabel: {fontSize: 13}},
      series: [{type: "bar", data: data.funnel.steps.map(function (s) { return s.reached; }),
                itemStyle: {color: "#2c7fb8"}, label: {show: true, position: "right"}}]
    });
    charts.push(f);
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  window.everycsrCharts = charts;  // for tests and the console
})();
