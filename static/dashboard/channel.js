// Channel page: power (with its min–max band when aggregated) and current from
// /api/v1/series/, drawn with Chart.js in the site time zone; PNG export of the
// chart; live power of this channel from /ws/dashboard/.
(function () {
  "use strict";
  const SM = window.SM;
  const chartConfig = SM && SM.config.chart;
  const canvas = document.getElementById("power-chart");
  const overlay = document.getElementById("chart-overlay");
  if (!chartConfig || !canvas || !window.Chart) return;
  const GREEN = "#2d8659";
  const BAND = "rgba(45, 134, 89, 0.16)";
  const CURRENT = "#c07a12";
  let chart = null;

  // A white background, so the exported PNG is readable everywhere.
  const whiteBackground = {
    id: "whiteBackground",
    beforeDraw(c) {
      const ctx = c.ctx;
      ctx.save();
      ctx.globalCompositeOperation = "destination-over";
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, c.width, c.height);
      ctx.restore();
    },
  };

  function showOverlay(kind) {
    overlay.hidden = false;
    overlay.dataset.kind = kind;
    overlay.textContent = "";
    if (kind === "loading") {
      const spin = document.createElement("div");
      spin.className = "spinner";
      overlay.append(spin, document.createTextNode(SM.t("loading")));
    } else if (kind === "error") {
      const text = document.createElement("div");
      text.className = "error";
      text.textContent = SM.t("load_failed");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn";
      button.textContent = SM.t("retry");
      button.addEventListener("click", load);
      overlay.append(text, button);
    } else if (kind === "empty") {
      overlay.append(document.createTextNode(SM.t("no_data")));
    }
  }

  // Rows are changes (a start, a delta, a stop), so a value holds until the next
  // point (stepped "after"). A running value followed by a silence longer than the
  // channel's gap threshold is cut there: the pump stopped without a stop row, or
  // the device was offline; the chart must not claim it ran through the gap.
  function line(points, value) {
    const data = [];
    const gapMs = Math.max(chartConfig.gapS * 1000, 3 * lastBucketS * 1000);
    let previous = null;
    for (const p of points) {
      const x = Date.parse(p.t);
      // Decided on the average power, so every dataset breaks at the same places.
      if (previous && previous.avg_power_w && x - Date.parse(previous.t) > gapMs) {
        data.push({ x: Date.parse(previous.t) + gapMs, y: null });
      }
      previous = p;
      data.push({ x, y: value(p) });
    }
    return data;
  }
  let lastBucketS = 60;

  function draw(series) {
    const points = series.points;
    lastBucketS = series.bucket_s;
    const aggregated = points.some((p) => p.rows > 1);
    const common = { pointRadius: 0, stepped: "after", spanGaps: false };
    const datasets = [
      {
        ...common, label: SM.t("power"), data: line(points, (p) => p.avg_power_w),
        borderColor: GREEN, backgroundColor: GREEN, borderWidth: 1.6, yAxisID: "power", order: 1,
      },
      {
        ...common, label: SM.t("current"), data: line(points, (p) => p.avg_current_a),
        borderColor: CURRENT, backgroundColor: CURRENT, borderWidth: 1.2, yAxisID: "current", borderDash: [4, 3], order: 2,
      },
    ];
    if (aggregated) {
      datasets.push(
        { ...common, label: "min", data: line(points, (p) => p.min_power_w), borderWidth: 0, yAxisID: "power", fill: false, order: 3 },
        { ...common, label: SM.t("power_band"), data: line(points, (p) => p.max_power_w), borderWidth: 0, yAxisID: "power", backgroundColor: BAND, fill: "-1", order: 3 },
      );
    }
    const options = {
      responsive: true, maintainAspectRatio: false, animation: false, normalized: true, parsing: false,
      locale: SM.lang,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: {
          type: "time", min: Date.parse(chartConfig.start), max: Date.parse(chartConfig.end),
          adapters: { date: { zone: SM.config.timeZone, locale: SM.lang } },
          time: { displayFormats: { minute: "HH:mm", hour: "HH:mm", day: "d LLL", month: "LLL yyyy" }, tooltipFormat: "ff" },
          ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 12 },
          grid: { color: "#eef2ef" },
        },
        power: { position: "left", beginAtZero: true, title: { display: true, text: SM.t("power") }, grid: { color: "#eef2ef" } },
        current: { position: "right", beginAtZero: true, title: { display: true, text: SM.t("current") }, grid: { drawOnChartArea: false } },
      },
      plugins: {
        legend: { labels: { boxWidth: 14, filter: (item) => item.text !== "min" } },
        tooltip: { filter: (item) => item.dataset.label !== "min" },
      },
    };
    if (chart) chart.destroy();
    chart = new window.Chart(canvas, { type: "line", data: { datasets }, options, plugins: [whiteBackground] });
    canvas.dataset.points = String(points.length);
    canvas.dataset.drawnFor = `${chartConfig.start}/${chartConfig.end}`;
    const bucket = document.getElementById("chart-bucket");
    if (bucket && aggregated) bucket.textContent = SM.t("bucket", { duration: SM.duration(series.bucket_s) });
  }

  async function load() {
    showOverlay("loading");
    try {
      const response = await fetch(chartConfig.seriesUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const series = await response.json();
      draw(series);
      if (series.points.length) overlay.hidden = true;
      else showOverlay("empty");
    } catch (e) {
      showOverlay("error");
    }
  }

  document.getElementById("download-png")?.addEventListener("click", () => {
    if (!chart) return;
    const link = document.createElement("a");
    link.download = chartConfig.filename;
    link.href = chart.toBase64Image("image/png");
    document.body.append(link);
    link.click();
    link.remove();
  });

  // The date picker shows the chosen day as soon as it is picked.
  const picker = document.getElementById("day-picker");
  picker?.addEventListener("change", () => { if (picker.value) picker.form.submit(); });

  // Live power of this channel.
  const power = document.querySelector(".card-live [data-power]");
  const pill = document.querySelector(".card-live [data-state]");
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/dashboard/`);
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      const items = msg.type === "live" ? msg.samples : msg.type === "states" ? msg.channels : [];
      for (const item of items) {
        if (item.channel !== chartConfig.channel) continue;
        if (power) power.firstChild.nodeValue = SM.number(item.p, 0);
        if (pill) {
          pill.className = `pill ${item.running ? "pill-running" : "pill-stopped"}`;
          pill.textContent = SM.t(item.running ? "running" : "stopped");
        }
      }
    };
    ws.onclose = () => setTimeout(connect, 5000);
  }

  load();
  connect();
})();
