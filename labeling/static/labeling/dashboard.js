/* The project quality page: draws its charts with Chart.js (global `Chart`, served from
   node_modules by config/settings.py STATICFILES_DIRS) from the JSON the view passes with
   json_script ("quality-data"): throughput per day stacked by annotator, gold accuracy
   per day, median lead time and rejection rate per annotator, and the pairwise agreement
   heat map. A chart whose canvas is not on the page (nothing to show yet) is skipped. */
(function () {
  "use strict";

  const PALETTE = [
    "#4363d8", "#e6194b", "#3cb44b", "#f58231", "#911eb4",
    "#42d4f4", "#f032e6", "#9a6324", "#469990", "#808000",
  ];
  const GRID = "#e6e9ef";

  function colour(n) {
    return PALETTE[n % PALETTE.length];
  }

  function shortDay(iso) {
    // "2026-11-26" -> "26 Nov"
    const d = new Date(iso + "T00:00:00Z");
    return d.toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" });
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : Math.round(value * 100) + "%";
  }

  // Red (0) -> amber (0.5) -> green (1); values below 0 (kappa) are as red as 0.
  const STOPS = [
    [0.0, [215, 48, 31]],
    [0.5, [253, 204, 92]],
    [1.0, [26, 152, 80]],
  ];

  function heat(value) {
    if (value === null || value === undefined) return "#eef0f4";
    const v = Math.max(0, Math.min(1, value));
    for (let k = 1; k < STOPS.length; k++) {
      const [x1, c1] = STOPS[k];
      const [x0, c0] = STOPS[k - 1];
      if (v <= x1) {
        const t = (v - x0) / (x1 - x0);
        const rgb = c0.map((c, i) => Math.round(c + (c1[i] - c) * t));
        return `rgb(${rgb.join(",")})`;
      }
    }
    return "rgb(26,152,80)";
  }

  function canvas(id) {
    return document.getElementById(id);
  }

  function throughputChart(data) {
    const el = canvas("chart-throughput");
    if (!el) return;
    new Chart(el, {
      type: "bar",
      data: {
        labels: data.days.map(shortDay),
        datasets: data.annotators
          .map((a, n) => ({ a, n }))
          .filter(({ a }) => a.throughput.some((count) => count > 0))
          .map(({ a, n }) => ({
            label: a.username,
            data: a.throughput,
            backgroundColor: colour(n),
            stack: "annotations",
            borderRadius: 2,
          })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "right", labels: { boxWidth: 12 } },
          tooltip: {
            callbacks: {
              footer: (items) => "Total: " + items.reduce((s, i) => s + i.parsed.y, 0),
            },
          },
        },
        scales: {
          x: { stacked: true, grid: { display: false } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, grid: { color: GRID },
               title: { display: true, text: "annotations" } },
        },
      },
    });
  }

  // Each annotator's running gold accuracy over the window: the mean score of every
  // gold answer so far (the daily means weighted by that day's answers), from their
  // first answer on; a dot on the days they answered.
  function runningGold(a) {
    let sum = 0;
    let n = 0;
    return a.gold_accuracy_series.map((mean, day) => {
      const count = a.gold_answers_series[day];
      if (mean !== null && count) {
        sum += mean * count;
        n += count;
      }
      return n ? sum / n : null;
    });
  }

  function goldChart(data) {
    const el = canvas("chart-gold");
    if (!el) return;
    const datasets = data.annotators
      .map((a, n) => ({ a, n }))
      .filter(({ a }) => a.gold_accuracy_series.some((v) => v !== null))
      .map(({ a, n }) => ({
        label: a.username + (a.flagged ? " (flagged)" : ""),
        data: runningGold(a),
        borderColor: colour(n),
        backgroundColor: colour(n),
        pointRadius: a.gold_answers_series.map((count) => (count ? 3 : 0)),
        cubicInterpolationMode: "monotone",
        borderWidth: a.flagged ? 3 : 2,
      }));
    datasets.push({
      label: "flag threshold",
      data: data.days.map(() => data.gold_threshold),
      borderColor: "#8a93a6",
      backgroundColor: "#8a93a6",
      borderDash: [6, 4],
      borderWidth: 1.5,
      pointRadius: 0,
      fill: false,
    });
    new Chart(el, {
      type: "line",
      data: { labels: data.days.map(shortDay), datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12 } },
          tooltip: { callbacks: { label: (i) => `${i.dataset.label}: ${percent(i.parsed.y)}` } },
        },
        scales: {
          x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 8 } },
          y: { min: 0, max: 1, grid: { color: GRID }, ticks: { callback: (v) => percent(v) } },
        },
      },
    });
  }

  function perAnnotatorBar(id, rows, value, options) {
    const el = canvas(id);
    if (!el) return;
    const shown = rows.filter((r) => value(r) !== null && value(r) !== undefined);
    new Chart(el, {
      type: "bar",
      data: {
        labels: shown.map((r) => r.username),
        datasets: [{
          label: options.label,
          data: shown.map(value),
          backgroundColor: shown.map((r) => colour(rows.indexOf(r))),
          borderRadius: 3,
        }],
      },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: options.tooltip } },
        },
        scales: {
          x: Object.assign({ beginAtZero: true, grid: { color: GRID } }, options.x || {}),
          y: { grid: { display: false } },
        },
      },
    });
  }

  // Cell values written in the middle of each heat map cell.
  const cellText = {
    id: "cellText",
    afterDatasetsDraw(chart) {
      const values = chart.options.plugins.cellText.values;
      const ctx = chart.ctx;
      ctx.save();
      ctx.font = "600 12px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      chart.data.datasets.forEach((dataset, col) => {
        chart.getDatasetMeta(col).data.forEach((bar, row) => {
          const v = values[row][col];
          const { x, y } = bar.getCenterPoint();
          ctx.fillStyle = v === null || v === undefined ? "#8a93a6" : v < 0.25 || v > 0.8 ? "#fff" : "#1f2430";
          ctx.fillText(row === col ? "—" : v === null || v === undefined ? "n/a" : v.toFixed(2), x, y);
        });
      });
      ctx.restore();
    },
  };

  function agreementChart(data) {
    const el = canvas("chart-agreement");
    const agreement = data.agreement;
    if (!el || !agreement) return;
    const names = agreement.annotators;
    const matrix = agreement.matrix;
    // A grid as a stacked horizontal bar chart: row i is a bar of n unit segments, the
    // segment of column j coloured by matrix[i][j].
    new Chart(el, {
      type: "bar",
      data: {
        labels: names,
        datasets: names.map((col, j) => ({
          label: col,
          data: names.map(() => 1),
          backgroundColor: names.map((_, i) => (i === j ? "#f4f5f8" : heat(matrix[i][j]))),
          borderColor: "#fff",
          borderWidth: 2,
          borderSkipped: false,
          barPercentage: 1,
          categoryPercentage: 1,
          stack: "grid",
        })),
      },
      plugins: [cellText],
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          cellText: { values: matrix },
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: (items) => `${names[items[0].dataIndex]} × ${items[0].dataset.label}`,
              label: (item) => {
                const v = matrix[item.dataIndex][item.datasetIndex];
                return `${agreement.measure_label}: ${v === null ? "no shared tasks" : v.toFixed(3)}`;
              },
            },
          },
        },
        scales: {
          x: {
            type: "linear",
            stacked: true,
            min: 0,
            max: names.length,
            position: "top",
            grid: { display: false },
            border: { display: false },
            afterBuildTicks: (axis) => {
              axis.ticks = names.map((_, j) => ({ value: j + 0.5 }));
            },
            ticks: { autoSkip: false, maxRotation: 0, callback: (v) => names[Math.floor(v)] },
          },
          y: { stacked: true, grid: { display: false }, border: { display: false } },
        },
      },
    });
  }

  function draw() {
    const source = document.getElementById("quality-data");
    if (!source || typeof Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#4a5163";
    throughputChart(data);
    goldChart(data);
    agreementChart(data);
    perAnnotatorBar("chart-lead-time", data.annotators, (r) =>
      r.median_lead_time_ms === null ? null : r.median_lead_time_ms / 1000, {
      label: "median lead time (s)",
      tooltip: (i) => `median ${i.parsed.x.toFixed(1)} s`,
      x: { title: { display: true, text: "seconds" } },
    });
    perAnnotatorBar("chart-rejection", data.annotators, (r) => (r.reviewed ? r.rejection_rate : null), {
      label: "rejection rate",
      tooltip: (i) => {
        const row = data.annotators.find((r) => r.username === i.label);
        return `${percent(i.parsed.x)} of ${row.reviewed} reviewed`;
      },
      x: { max: 1, ticks: { callback: (v) => percent(v) } },
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
