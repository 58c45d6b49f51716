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
      const ctx = chart.ctx;
      const cells = chart.data.datasets[0].data;
      ctx.save();
      ctx.font = "600 12px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      chart.getDatasetMeta(0).data.forEach((element, index) => {
        const { i, j, v } = cells[index];
        const { x, y } = element.getCenterPoint();
        ctx.fillStyle = v === null || v === undefined ? "#8a93a6" : v < 0.25 || v > 0.8 ? "#fff" : "#1f2430";
        ctx.fillText(i === j ? "—" : v === null || v === undefined ? "n/a" : v.toFixed(2), x, y);
      });
      ctx.restore();
    },
  };

  // The pairwise agreement matrix as a heat map (chartjs-chart-matrix): one cell per
  // annotator pair, coloured by the pair's agreement.
  function agreementChart(data) {
    const el = canvas("chart-agreement");
    const agreement = data.agreement;
    if (!el || !agreement) return;
    const names = agreement.annotators;
    const matrix = agreement.matrix;
    const n = names.length;
    const cells = [];
    names.forEach((row, i) => names.forEach((col, j) => cells.push({ x: col, y: row, v: matrix[i][j], i, j })));
    new Chart(el, {
      type: "matrix",
      data: {
        datasets: [{
          label: agreement.measure_label,
          data: cells,
          backgroundColor: (c) => {
            const cell = c.dataset.data[c.dataIndex];
            return cell.i === cell.j ? "#f4f5f8" : heat(cell.v);
          },
          borderColor: "#fff",
          borderWidth: 1,
          width: ({ chart }) => (chart.chartArea || {}).width / n - 2,
          height: ({ chart }) => (chart.chartArea || {}).height / n - 2,
        }],
      },
      plugins: [cellText],
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: (items) => {
                const cell = items[0].dataset.data[items[0].dataIndex];
                return `${cell.y} × ${cell.x}`;
              },
              label: (item) => {
                const cell = item.dataset.data[item.dataIndex];
                return `${agreement.measure_label}: ${cell.v === null ? "no shared tasks" : cell.v.toFixed(3)}`;
              },
            },
          },
        },
        scales: {
          x: {
            type: "category",
            labels: names,
            offset: true,
            position: "top",
            grid: { display: false },
            border: { display: false },
            ticks: { autoSkip: false, maxRotation: 0 },
          },
          y: {
            type: "category",
            labels: names,
            offset: true,
            reverse: false,
            grid: { display: false },
            border: { display: false },
          },
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
