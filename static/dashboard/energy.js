// Energy page: kWh per day and per month as stacked bars per phase, with the total as a dot.
(function () {
  "use strict";
  const SM = window.SM;
  const data = SM && SM.config.energy;
  if (!data || !window.Chart) return;
  const PHASE_COLORS = ["#2d8659", "#6fb58f", "#b7dcc6", "#8a9a91"];
  // Dates arrive as "YYYY-MM-DD" (local days of the site): labelled at noon UTC, so no zone can shift the day.
  const dayLabel = new Intl.DateTimeFormat(SM.lang, { timeZone: "UTC", weekday: "short", day: "numeric" });
  const dayTitle = new Intl.DateTimeFormat(SM.lang, { timeZone: "UTC", weekday: "long", day: "numeric", month: "long" });
  const monthLabel = new Intl.DateTimeFormat(SM.lang, { timeZone: "UTC", month: "short", year: "2-digit" });
  const monthTitle = new Intl.DateTimeFormat(SM.lang, { timeZone: "UTC", month: "long", year: "numeric" });
  const noon = (text) => new Date(`${text}T12:00:00Z`);

  function draw(canvasId, rows, label, title) {
    const canvas = document.getElementById(canvasId);
    if (!canvas || !rows.length) return;
    const phases = data.phases.length ? data.phases : Object.keys(rows[0].channels);
    const datasets = phases.map((key, index) => ({
      type: "bar", label: data.names[key] || key, stack: "phases", backgroundColor: PHASE_COLORS[index % PHASE_COLORS.length],
      data: rows.map((row) => row.channels[key] ?? 0), borderRadius: 2, order: 2,
    }));
    datasets.push({
      type: "line", label: SM.t("total"), data: rows.map((row) => row.total_kwh),
      borderColor: "#1c2721", backgroundColor: "#1c2721", pointRadius: 3, pointStyle: "rectRot", showLine: false, order: 1,
    });
    new window.Chart(canvas, {
      data: { labels: rows.map((row) => label.format(noon(row.start))), datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, locale: SM.lang,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 6 } },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: SM.t("energy_kwh") }, grid: { color: "#eef2ef" } },
        },
        plugins: {
          legend: { labels: { boxWidth: 14 } },
          tooltip: {
            callbacks: {
              title: (items) => title.format(noon(rows[items[0].dataIndex].start)),
              label: (item) => `${item.dataset.label}: ${SM.number(item.parsed.y, 2)} kWh`,
            },
          },
        },
      },
    });
  }

  draw("days-chart", data.days, dayLabel, dayTitle);
  draw("months-chart", data.months, monthLabel, monthTitle);
})();
