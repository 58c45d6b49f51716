/* Charts of the version pages, drawn with Chart.js (UMD build, global `Chart`).
 *
 * A chart is a <canvas data-chart="bar|doughnut|grouped" data-source="ID" [data-key="K"]>
 * whose data is the JSON of the json_script element ID (or its key K): {labels, counts}
 * for bar and doughnut, {labels, a, b} for grouped. Canvases already on the page are drawn
 * at load, those brought in by htmx (the diff partial) when they arrive. A drawn canvas
 * gets data-drawn="1" (the browser tests wait for it).
 */
(function () {
  "use strict";

  var PALETTE = ["#3b63d6", "#e07b39", "#2f9e6b", "#b8488f", "#7a5bd1", "#c9a227", "#3aa0b8", "#d34f4f"];
  var SPLIT_COLOURS = { train: "#2f9e6b", val: "#e0a030", test: "#7a5bd1" };

  function dataFor(canvas) {
    var source = document.getElementById(canvas.dataset.source);
    if (!source) return null;
    var data = JSON.parse(source.textContent);
    return canvas.dataset.key ? data[canvas.dataset.key] : data;
  }

  function config(kind, data) {
    var base = { animation: false, responsive: true, maintainAspectRatio: false };
    if (kind === "doughnut") {
      return {
        type: "doughnut",
        data: {
          labels: data.labels,
          datasets: [{
            data: data.counts,
            backgroundColor: data.labels.map(function (name, i) { return SPLIT_COLOURS[name] || PALETTE[i % PALETTE.length]; }),
          }],
        },
        options: Object.assign(base, { plugins: { legend: { position: "right" } } }),
      };
    }
    if (kind === "grouped") {
      return {
        type: "bar",
        data: {
          labels: data.labels,
          datasets: [
            { label: "parent", data: data.a, backgroundColor: "#aab4c8" },
            { label: "this version", data: data.b, backgroundColor: PALETTE[0] },
          ],
        },
        options: Object.assign(base, { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }),
      };
    }
    return {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{ label: "count", data: data.counts, backgroundColor: PALETTE[0] }],
      },
      options: Object.assign(base, {
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      }),
    };
  }

  function draw(root) {
    if (typeof Chart === "undefined" || !root || !root.querySelectorAll) return;
    root.querySelectorAll("canvas[data-chart]:not([data-drawn])").forEach(function (canvas) {
      var data = dataFor(canvas);
      if (!data) return;
      new Chart(canvas, config(canvas.dataset.chart, data));
      canvas.dataset.drawn = "1";
    });
  }

  document.addEventListener("htmx:load", function (event) { draw(event.target); });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(document); });
  } else {
    draw(document);
  }
})();
