// The public REST APIs, called with the session's bearer token. Every failure becomes an ApiError
// whose message a program manager can read: refused token, missing role, service or network down.

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status; // 0 when the API could not be reached at all
    this.title = title;
  }

  get explanation() {
    if (this.status === 0) return `The API could not be reached (network): ${this.message}`;
    if (this.status === 401) return `Not logged in, or the token was refused (401): ${this.message}`;
    if (this.status === 403) return `Your role may not see this (403): ${this.message}`;
    return `The API answered ${this.status}: ${this.message}`;
  }
}

export class Api {
  constructor(base, token) {
    this.base = base; // "" when the dashboard is served from the API's own host (gateway, Ingress)
    this.token = token;
  }

  async get(path, params = {}) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null));
    const url = `${this.base}${path}${query.size ? `?${query}` : ""}`;
    let response;
    try {
      response = await fetch(url, { headers: { Authorization: `Bearer ${this.token}`, Accept: "application/json" } });
    } catch (error) {
      throw new ApiError(0, "Network error", `${path}: ${error.message}`);
    }
    if (response.ok) return response.json();
    // Services answer problem+json (RFC 9457); a proxy in between may answer anything else.
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      problem = { title: response.statusText || "Error" };
    }
    throw new ApiError(response.status, problem.title || "Error", problem.detail || path);
  }

  funnel(from, to, groupBy) {
    return this.get("/v1/funnel", { from, to, group_by: groupBy });
  }

  timeseries(from, to, metric, interval) {
    return this.get("/v1/timeseries", { from, to, metric, interval });
  }

  goals() {
    return this.get("/v1/goals", { limit: 50 });
  }

  program() {
    return this.get("/v1/program");
  }

  surveys() {
    return this.get("/v1/surveys", { limit: 50 });
  }

  surveyResults(surveyId) {
    return this.get(`/v1/surveys/${encodeURIComponent(surveyId)}/results`);
  }

  leaderboard(period, params = {}) {
    return this.get("/v1/leaderboard", { period, ...params });
  }

  advocates() {
    return this.get("/v1/advocates", { limit: 200 });
  }

  content(contentId) {
    return this.get(`/v1/content/${encodeURIComponent(contentId)}`);
  }
}

// Logs in through the local gateway's dev login (development only; absent in production).
export async function devLogin(path, org, name) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ org, name }),
    });
  } catch (error) {
    throw new ApiError(0, "Network error", error.message);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.title || "Error", body.detail || path);
  return body;
}
