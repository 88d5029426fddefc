// The program dashboard: logs in, then fills each panel from the public APIs on its own, so one
// API that fails (a missing role, a service down) shows its error in its panel, not a blank page.

import { Api, ApiError, devLogin } from "./api.js";
import { clicksChart, funnelChart, goalChart, networksChart, teamsChart, timeseriesChart } from "./charts.js";

const TOKEN_KEY = "chorus.dashboard.token";
const RANGE_DAYS = 28;
const TIMESERIES_METRICS = ["shares", "clicks", "unique_clicks", "leads"];
const TOP_CONTENT = 10;
const BOARD_ROWS = 10;
const GOAL_CHARTS = 6; // a chart each for the first goals; the rest are listed with their figures

const $ = (selector) => document.querySelector(selector);
const numbers = new Intl.NumberFormat("en");
const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
// Amounts come as exact decimal strings ("10643.50"); formatting the string keeps it exact.
const money = new Intl.NumberFormat("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const ratio = new Intl.NumberFormat("en", { style: "percent", maximumFractionDigits: 1 });
const STATUS_WORDS = { on_track: "on track", at_risk: "at risk", behind: "behind", achieved: "achieved" };

let config = { api_base: "", dev_login: null };
let api = null;
let interval = "day";

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// One figure of a <dl>: its label above its value; tests find the value by data-figure.
function figure(name, label, text) {
  return [element("div", { class: "figure" }, element("dt", {}, label), element("dd", { "data-figure": name }, text))];
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function range() {
  const fields = $("#range").elements;
  return { from: fields.namedItem("from").value, to: fields.namedItem("to").value };
}

function claims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

// ---- session ---------------------------------------------------------------------------------

function showLogin(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  api = null;
  $("#dashboard").hidden = true;
  $("#session").hidden = true;
  $("#login").hidden = false;
  $("#dev-login").hidden = !config.dev_login;
  banner(message);
}

function banner(message) {
  $("#banner").hidden = !message;
  $("#banner").textContent = message || "";
}

function start(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  api = new Api(config.api_base, token);
  const who = claims(token);
  $("#who").textContent = who.org ? `${who.sub} · ${who.org}` : "";
  $("#login").hidden = true;
  $("#session").hidden = false;
  $("#dashboard").hidden = false;
  banner("");
  loadAll();
}

// ---- panels ----------------------------------------------------------------------------------

// Runs one panel's loader; an error replaces that panel's body with what went wrong. A refused
// token ends the session: every panel would fail the same way.
async function panel(id, load) {
  const body = $(`#${id} .panel-body`);
  const section = $(`#${id}`);
  section.querySelector(".panel-error")?.remove();
  body.hidden = false;
  section.setAttribute("aria-busy", "true");
  try {
    await load();
    section.dataset.loaded = "true";
  } catch (error) {
    const known = error instanceof ApiError;
    if (known && error.status === 401) {
      showLogin(error.explanation);
      return;
    }
    body.hidden = true;
    section.dataset.loaded = "error";
    section.append(element("p", { class: "panel-error", role: "alert" }, known ? error.explanation : `Error: ${error.message}`));
    if (!known) console.error(error);
  } finally {
    section.removeAttribute("aria-busy");
  }
}

// The funnel by day feeds two panels: asked once per load.
let dayFunnel = null;

function funnelByDay() {
  if (!dayFunnel) {
    const { from, to } = range();
    dayFunnel = api.funnel(from, to, "day");
  }
  return dayFunnel;
}

async function loadFunnel() {
  const funnel = await funnelByDay();
  const t = funnel.totals;
  const revenue =
    Object.entries(t.revenue)
      .map(([currency, amount]) => `${money.format(amount)} ${currency}`)
      .join(", ") || "0";
  $("#funnel-figures").replaceChildren(
    ...figure("shares", "Shares", numbers.format(t.shares)),
    ...figure("reach", "Reach", numbers.format(t.reach)),
    ...figure("clicks", "Clicks", numbers.format(t.clicks)),
    ...figure("unique_clicks", "Unique clicks", numbers.format(t.unique_clicks)),
    ...figure("leads", "Leads", numbers.format(t.leads)),
    ...figure("sales", "Sales", numbers.format(t.sales)),
    ...figure("revenue", "Revenue (net of refunds)", revenue),
    ...figure("applications", "Job applications", numbers.format(t.applications ?? 0)),
    ...figure("hires", "Hires", numbers.format(t.hires ?? 0)),
    ...figure("ctr", "Click-through", ratio.format(t.ctr)),
    ...figure("conversion_rate", "Leads per unique click", ratio.format(t.conversion_rate)),
    ...figure("emv", "Earned media value", `${money.format(t.emv)} ${funnel.emv.currency}`),
  );
  funnelChart(t);
}

// Who clicked: people, the advocates themselves, and bots and link previews (never counted as
// clicks in the funnel, but worth watching: a high share means links are crawled more than read).
async function loadClicks() {
  const t = (await funnelByDay()).totals;
  const all = t.clicks + t.self_clicks + t.bot_clicks;
  $("#click-figures").replaceChildren(
    ...figure("all_clicks", "All clicks", numbers.format(all)),
    ...figure("bot_clicks", "Bots and previews", numbers.format(t.bot_clicks)),
    ...figure("bot_share", "Share of bots and previews", ratio.format(all ? t.bot_clicks / all : 0)),
    ...figure("self_clicks", "Advocates' own", numbers.format(t.self_clicks)),
  );
  clicksChart(t);
}

async function loadTimeseries() {
  const { from, to } = range();
  const answers = await Promise.all(TIMESERIES_METRICS.map((m) => api.timeseries(from, to, m, interval)));
  timeseriesChart(Object.fromEntries(TIMESERIES_METRICS.map((m, i) => [m, answers[i]])));
}

// Goals on a ratio (0..1) read as percentages; counts, EMV, NPS and averages as numbers.
const RATIO_METRICS = new Set(["ctr", "conversion_rate", "active_ratio", "training_completion"]);

function goalValue(goal, value) {
  return RATIO_METRICS.has(goal.metric) ? ratio.format(value) : decimal.format(value);
}

async function loadGoals() {
  const { items } = await api.goals();
  const today = isoDay(new Date());
  const list = $("#goals");
  list.replaceChildren();
  if (!items.length) {
    list.append(element("p", { class: "muted" }, "No goals yet: set one with POST /v1/goals."));
    return;
  }
  items.forEach((goal, index) => {
    const percent = Math.min(goal.progress, 1) * 100;
    const card = element(
      "article",
      { class: "goal", "data-goal": goal.goal_id },
      element("h3", {}, goal.name, " ", element("span", { class: `status ${goal.status}`, "data-figure": "goal.status" }, STATUS_WORDS[goal.status] || goal.status)),
      element("p", { class: "muted" }, `${goal.metric} · ${goal.starts_on} to ${goal.ends_on}`),
      element(
        "div",
        { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(percent)) },
        element("span", { style: `width: ${percent}%` }),
      ),
      element(
        "dl",
        { class: "figures small" },
        ...figure("goal.value", "Now", goalValue(goal, goal.value)),
        ...figure("goal.target", "Target", goalValue(goal, goal.target)),
        ...figure("goal.progress", "Progress", ratio.format(goal.progress)),
        ...figure("goal.forecast", "Forecast", goalValue(goal, goal.forecast)),
      ),
    );
    if (index < GOAL_CHARTS) {
      const name = `goal-${index}`;
      card.append(element("div", { class: "chart" }, element("canvas", { "data-chart": name, role: "img", "aria-label": `${goal.name}: value, forecast and target` })));
      list.append(card);
      goalChart(name, goal, today);
    } else {
      list.append(card);
    }
  });
}

async function loadProgram() {
  const p = await api.program();
  $("#program-figures").replaceChildren(
    ...figure("enrolled", "Enrolled", numbers.format(p.enrolled)),
    ...figure("active", "Shared in the last 30 days", `${numbers.format(p.active)} (${ratio.format(p.active_ratio)})`),
    ...figure("trained", "Completed a course", `${numbers.format(p.trained)} (${ratio.format(p.training_completion)})`),
  );
}

// Display names come from sharing's advocate list (admins only); without it, the names the board
// carries for those who let colleagues see them, else the ids.
async function advocateNames() {
  try {
    const page = await api.advocates();
    return new Map(page.items.map((a) => [a.id, a]));
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return new Map();
    throw error;
  }
}

async function loadLeaderboard() {
  const period = $("#board-period").value;
  const [teams, board, names] = await Promise.all([
    api.leaderboard(period, { scope: "team" }),
    api.leaderboard(period, { scope: "org", limit: BOARD_ROWS }),
    advocateNames(),
  ]);
  teamsChart(teams.items);
  const table = $("#advocate-board");
  const header = element("tr", {}, element("th", {}, "#"), element("th", {}, "Advocate"), element("th", {}, "Team"), element("th", { class: "num" }, "Points"));
  const rows = board.items.map((row) => {
    const advocate = names.get(row.advocate_id);
    return element(
      "tr",
      { "data-advocate": row.advocate_id },
      element("td", { "data-figure": "board.rank" }, String(row.rank)),
      element("td", { "data-figure": "board.advocate" }, advocate ? advocate.display_name : row.display_name || row.advocate_id),
      element("td", {}, advocate?.team || ""),
      element("td", { class: "num", "data-figure": "board.points" }, numbers.format(row.points)),
    );
  });
  if (!rows.length) rows.push(element("tr", {}, element("td", { colspan: "4", class: "muted" }, "No points in this period yet.")));
  table.replaceChildren(element("thead", {}, header), element("tbody", {}, ...rows));
}

async function loadNetworks() {
  const { from, to } = range();
  const funnel = await api.funnel(from, to, "network");
  networksChart([...funnel.rows].sort((a, b) => b.clicks - a.clicks || b.shares - a.shares));
}

async function loadTopContent() {
  const { from, to } = range();
  const funnel = await api.funnel(from, to, "content");
  const top = [...funnel.rows].sort((a, b) => b.clicks - a.clicks || b.leads - a.leads || b.shares - a.shares).slice(0, TOP_CONTENT);
  // Titles from the content library; an item since deleted or hidden keeps its id.
  const items = await Promise.all(top.map((row) => api.content(row.key).catch(() => null)));
  const header = element(
    "tr",
    {},
    ...["Content", "Shares", "Clicks", "Leads", "Click-through"].map((h, i) => element("th", i ? { class: "num" } : {}, h)),
  );
  const rows = top.map((row, i) =>
    element(
      "tr",
      { "data-content": row.key },
      element("td", {}, items[i] ? `${items[i].title} (${items[i].type})` : row.key),
      element("td", { class: "num" }, numbers.format(row.shares)),
      element("td", { class: "num" }, numbers.format(row.clicks)),
      element("td", { class: "num" }, numbers.format(row.leads)),
      element("td", { class: "num" }, ratio.format(row.ctr)),
    ),
  );
  if (!rows.length) rows.push(element("tr", {}, element("td", { colspan: "5", class: "muted" }, "Nothing shared in this range.")));
  $("#top-content").replaceChildren(element("thead", {}, header), element("tbody", {}, ...rows));
}

async function loadSurveys() {
  const { items } = await api.surveys();
  const results = await Promise.all(items.slice(0, 5).map((s) => api.surveyResults(s.survey_id)));
  const list = $("#surveys");
  list.replaceChildren();
  if (!items.length) {
    list.append(element("p", { class: "muted" }, "No surveys yet."));
    return;
  }
  items.slice(0, 5).forEach((survey, i) => {
    const result = results[i];
    const card = element(
      "article",
      { class: "survey", "data-survey": survey.survey_id },
      element("h3", {}, survey.title, " ", element("span", { class: "muted" }, survey.kind === "enps" ? "eNPS" : survey.kind)),
      element("p", { class: "muted" }, element("span", { "data-figure": "survey.responses" }, numbers.format(result.responses)), " answers"),
    );
    if (result.withheld) {
      card.append(element("p", { class: "muted" }, `Scores show from ${result.min_responses} answers, to keep them anonymous.`));
    }
    for (const q of result.questions) {
      if (q.nps !== null && q.nps !== undefined) {
        card.append(
          element(
            "div",
            { class: "nps" },
            element("span", { class: "nps-score", "data-figure": "survey.nps", "data-question": q.id }, decimal.format(q.nps)),
            element("span", {}, q.text),
            element("span", { class: "nps-bar" }, element("span", { style: `left: ${(q.nps + 100) / 2}%` })),
          ),
        );
      } else if (q.average !== null && q.average !== undefined) {
        card.append(element("p", {}, element("strong", { "data-figure": "survey.average", "data-question": q.id }, q.average.toFixed(2)), ` / 5 · ${q.text}`));
      }
      if (q.comments.length) {
        card.append(element("ul", { class: "comments" }, ...q.comments.slice(0, 3).map((c) => element("li", {}, `“${c}”`))));
      }
    }
    list.append(card);
  });
}

function loadAll() {
  dayFunnel = null;
  return Promise.all([
    panel("panel-funnel", loadFunnel),
    panel("panel-clicks", loadClicks),
    panel("panel-surveys", loadSurveys),
    panel("panel-timeseries", loadTimeseries),
    panel("panel-goals", loadGoals),
    panel("panel-program", loadProgram),
    panel("panel-leaderboard", loadLeaderboard),
    panel("panel-networks", loadNetworks),
    panel("panel-content", loadTopContent),
  ]).then(() => {
    document.body.dataset.loaded = "true";
  });
}

// ---- wiring ----------------------------------------------------------------------------------

async function main() {
  try {
    const response = await fetch("config.json", { cache: "no-cache" });
    if (response.ok) config = { ...config, ...(await response.json()) };
  } catch {
    // No config.json: the API is on this page's host, and there is no dev login.
  }
  const today = new Date();
  const first = new Date(today);
  first.setUTCDate(first.getUTCDate() - (RANGE_DAYS - 1));
  $("#range").elements.namedItem("from").value = isoDay(first);
  $("#range").elements.namedItem("to").value = isoDay(today);

  $("#dev-login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = event.target.elements;
    try {
      const login = await devLogin(config.dev_login, fields.namedItem("org").value.trim(), fields.namedItem("name").value.trim());
      start(login.token);
    } catch (error) {
      banner(error instanceof ApiError ? `Login failed. ${error.explanation}` : `Login failed: ${error.message}`);
    }
  });
  $("#token-login").addEventListener("submit", (event) => {
    event.preventDefault();
    start(event.target.elements.namedItem("token").value.trim());
  });
  $("#logout").addEventListener("click", () => showLogin(""));
  $("#range").addEventListener("submit", (event) => {
    event.preventDefault();
    loadAll();
  });
  $("#board-period").addEventListener("change", () => panel("panel-leaderboard", loadLeaderboard));
  for (const button of document.querySelectorAll("[data-interval]")) {
    button.addEventListener("click", () => {
      interval = button.dataset.interval;
      for (const b of document.querySelectorAll("[data-interval]")) b.setAttribute("aria-pressed", String(b === button));
      panel("panel-timeseries", loadTimeseries);
    });
  }

  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) start(token);
  else showLogin("");
}

main();
