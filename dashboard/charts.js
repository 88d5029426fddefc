// The dashboard's charts, drawn with Chart.js (from npm, see package.json). Each chart replaces the
// one drawn before on its canvas, marks its canvas data-rendered once drawn, and is kept in
// window.chorusDashboard.charts by name so its data can be read from the console (and the tests).

import { Chart, registerables } from "chart.js";

Chart.register(...registerables);
Chart.defaults.font.family = getComputedStyle(document.documentElement).getPropertyValue("--font").trim() || "system-ui";
Chart.defaults.maintainAspectRatio = false;

export const COLOURS = {
  shares: "#6b5bd6",
  reach: "#9aa4b2",
  clicks: "#1f77b4",
  unique_clicks: "#17becf",
  leads: "#e07b00",
  sales: "#2ca02c",
  self: "#bcbd22",
  bot: "#d62728",
  target: "#444",
  forecast: "#e07b00",
};

const charts = {};
window.chorusDashboard = { charts };

const markRendered = {
  id: "chorusRendered",
  afterRender(chart) {
    chart.canvas.dataset.rendered = "true";
  },
};

export function draw(name, config) {
  const canvas = document.querySelector(`canvas[data-chart="${name}"]`);
  charts[name]?.destroy();
  delete canvas.dataset.rendered;
  // Animations make the test wait and a phone work for nothing: the figures are what matter.
  const options = { animation: false, responsive: true, ...config.options };
  charts[name] = new Chart(canvas, { ...config, options, plugins: [markRendered, ...(config.plugins || [])] });
  return charts[name];
}

export function funnelChart(totals) {
  const stages = [
    ["Reach", totals.reach, COLOURS.reach],
    ["Clicks", totals.clicks, COLOURS.clicks],
    ["Unique clicks", totals.unique_clicks, COLOURS.unique_clicks],
    ["Leads", totals.leads, COLOURS.leads],
    ["Sales", totals.sales, COLOURS.sales],
  ];
  return draw("funnel", {
    type: "bar",
    data: {
      labels: stages.map(([label]) => label),
      datasets: [{ label: "funnel", data: stages.map(([, value]) => value), backgroundColor: stages.map(([, , c]) => c) }],
    },
    options: {
      indexAxis: "y",
      plugins: { legend: { display: false } },
      // Reach is thousands of times the sales: a log scale keeps every stage visible (from 0.5,
      // so that a stage of 1 still shows a bar), labelled at powers of ten only.
      scales: {
        x: {
          type: "logarithmic",
          min: 0.5,
          ticks: { callback: (value) => (Number.isInteger(Math.log10(value)) ? Number(value).toLocaleString("en") : null) },
        },
      },
    },
  });
}

export function timeseriesChart(series) {
  const [first] = Object.values(series);
  return draw("timeseries", {
    type: "line",
    data: {
      labels: first.points.map((p) => p.period),
      datasets: Object.entries(series).map(([metric, answer]) => ({
        label: metric.replace("_", " "),
        data: answer.points.map((p) => p.value),
        borderColor: COLOURS[metric],
        backgroundColor: COLOURS[metric],
        tension: 0.2,
      })),
    },
    options: {
      interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true }, x: { ticks: { maxTicksLimit: 8 } } },
    },
  });
}

export function clicksChart(totals) {
  return draw("clicks", {
    type: "doughnut",
    data: {
      labels: ["People", "Advocates' own", "Bots and previews"],
      datasets: [
        {
          data: [totals.clicks, totals.self_clicks, totals.bot_clicks],
          backgroundColor: [COLOURS.clicks, COLOURS.self, COLOURS.bot],
        },
      ],
    },
    options: { plugins: { legend: { position: "bottom" } } },
  });
}

function daysFrom(start, end) {
  const days = [];
  for (let d = new Date(`${start}T00:00:00Z`); d <= new Date(`${end}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    days.push(d.toISOString().slice(0, 10));
  }
  return days;
}

// A goal's recorded days, today's value, the target, and the forecast as the API computes it:
// a straight line from today's value to the forecast on the last day.
export function goalChart(name, goal, today) {
  const days = daysFrom(goal.starts_on, goal.ends_on);
  const recorded = new Map(goal.history.map((s) => [s.date, s.value]));
  const now = days.includes(today) ? today : days[days.length - 1];
  recorded.set(now, goal.value);
  const nowIndex = days.indexOf(now);
  const last = days.length - 1;
  const forecast = days.map((_, i) =>
    i < nowIndex ? null : goal.value + ((goal.forecast - goal.value) * (i - nowIndex)) / Math.max(last - nowIndex, 1),
  );
  return draw(name, {
    type: "line",
    data: {
      labels: days,
      datasets: [
        { label: "value", data: days.map((d) => recorded.get(d) ?? null), borderColor: COLOURS.clicks, backgroundColor: COLOURS.clicks, spanGaps: true },
        { label: "forecast", data: forecast, borderColor: COLOURS.forecast, borderDash: [6, 4], pointRadius: 0 },
        { label: "target", data: days.map(() => goal.target), borderColor: COLOURS.target, borderDash: [2, 3], pointRadius: 0 },
      ],
    },
    options: {
      plugins: { legend: { position: "bottom" } },
      scales: { y: { beginAtZero: true }, x: { ticks: { maxTicksLimit: 6 } } },
    },
  });
}

export function teamsChart(teams) {
  return draw("teams", {
    type: "bar",
    data: {
      labels: teams.map((t) => t.team),
      datasets: [{ label: "points per advocate", data: teams.map((t) => t.points_per_advocate), backgroundColor: COLOURS.shares }],
    },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } },
  });
}

export function networksChart(rows) {
  return draw("networks", {
    type: "bar",
    data: {
      labels: rows.map((r) => r.key),
      datasets: [
        { label: "shares", data: rows.map((r) => r.shares), backgroundColor: COLOURS.shares },
        { label: "clicks", data: rows.map((r) => r.clicks), backgroundColor: COLOURS.clicks },
        { label: "leads", data: rows.map((r) => r.leads), backgroundColor: COLOURS.leads },
      ],
    },
    options: { plugins: { legend: { position: "bottom" } }, scales: { y: { beginAtZero: true } } },
  });
}
