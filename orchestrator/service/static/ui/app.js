// The dashboard: polls the service's JSON every few seconds and draws it (no framework, no build).
// Data from the service (job ids, skill names, review inputs) is only ever set as text, never as
// HTML. The API key lives in sessionStorage (this tab only) and goes out as a bearer token.
"use strict";

(() => {
  const KEY_STORAGE = "orchestrator.apiKey";
  const POLL_MS = 3000;
  /** The savings chart's two series; tests look for these colours in a screenshot. */
  const SPENT_COLOR = "#2563eb";
  const BASELINE_COLOR = "#f59e0b";
  const PALETTE = ["#2563eb", "#dc2626", "#059669", "#7c3aed", "#d97706", "#0891b2", "#db2777",
    "#4b5563"];

  const HINT = "Click a job to see its ledger and what it saved.";
  const $ = (id) => document.getElementById(id);
  // session: bumped by every sign-in and sign-out, so a poll of an earlier session stops
  const state = { session: 0, selected: null, timer: null, savingsChart: null,
    escalationChart: null };

  class HttpError extends Error {
    constructor(status, problem) {
      super(problem.detail || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  /** The service could not be reached (as opposed to a bug in this page). */
  class NetworkError extends Error {}

  // -- the service -----------------------------------------------------------------------------

  async function api(path) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(path, { headers, cache: "no-store" });
    } catch (error) {
      throw new NetworkError(String(error));
    }
    if (!response.ok) {
      let problem = {};
      try {
        problem = await response.json();
      } catch (_) {
        // not a problem document: keep the status alone
      }
      throw new HttpError(response.status, problem);
    }
    return response.json();
  }

  // -- formatting ------------------------------------------------------------------------------

  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const percent = (x) => (x == null ? "–" : `${(100 * x).toFixed(1)} %`);
  const usd = (x) => `$${Number(x || 0).toFixed(x >= 1 ? 2 : 4)}`;
  const count = (x) => integer.format(Number(x || 0));
  const time = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
  const clock = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–");

  function since(seconds) {
    const age = Math.max(0, Date.now() / 1000 - seconds);
    if (age < 90) return `${Math.round(age)} s ago`;
    if (age < 5400) return `${Math.round(age / 60)} min ago`;
    return `${(age / 3600).toFixed(1)} h ago`;
  }

  /** ``{text: "hi", n: 2}`` -> ``text: hi · n: 2`` (for review inputs and answers). */
  function fields(values) {
    return Object.entries(values || {})
      .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(" · ");
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function statusBadge(status) {
    const span = document.createElement("span");
    span.className = `status status-${status}`;
    span.textContent = status;
    return span;
  }

  // -- jobs ------------------------------------------------------------------------------------

  async function loadJobs() {
    const page = await api("v1/dashboard/jobs?limit=50");
    const body = $("jobs").tBodies[0];
    body.replaceChildren(...page.jobs.map(jobRow));
    $("jobs-empty").hidden = page.jobs.length > 0;
    const active = page.jobs.filter((j) => j.status === "pending" || j.status === "running");
    $("total-jobs").textContent = count(page.jobs.length);
    $("total-active").textContent = count(active.length);
    const t = page.totals;
    $("total-calls").textContent = `${count(t.calls.spent)} / ${count(t.calls.baseline)}`;
    $("total-cost").textContent = `${usd(t.cost_usd.spent)} / ${usd(t.cost_usd.baseline)}`;
    const linked = /^#job=([0-9a-f]{16})$/.exec(location.hash); // a link to one job
    if (!state.selected && linked) {
      select(linked[1]);
    }
  }

  function jobRow(job) {
    const tr = document.createElement("tr");
    tr.dataset.job = job.id;
    if (job.id === state.selected) tr.className = "selected";
    const id = cell(tr, "");
    const code = document.createElement("code");
    code.textContent = job.id;
    id.appendChild(code);
    cell(tr, job.graph);
    cell(tr, job.owner);
    cell(tr, "").appendChild(statusBadge(job.status));
    const progress = cell(tr, "");
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = job.fraction;
    const text = document.createElement("span");
    text.className = "progress-text";
    text.textContent = `${count(job.items_done)} / ${count(job.items_total)}`;
    progress.append(bar, text);
    const rate = `${Math.round(100 * job.ledger.escalation_rate)} %`;
    cell(tr, `${count(job.ledger.escalated)} (${rate})`, "num");
    cell(tr, `${count(job.savings.calls.spent)} / ${count(job.savings.calls.baseline)}`, "num");
    cell(tr, usd(job.savings.cost_usd.spent), "num");
    cell(tr, clock(job.created_at)).title = time(job.created_at);
    tr.addEventListener("click", () => select(job.id));
    return tr;
  }

  function select(jobId) {
    state.selected = jobId;
    history.replaceState(null, "", `#job=${jobId}`);
    for (const tr of $("jobs").tBodies[0].rows) {
      tr.classList.toggle("selected", tr.dataset.job === jobId);
    }
    loadDetail().catch(report);
  }

  // -- one job: ledger and savings -------------------------------------------------------------

  /** The ledger's general numbers, shown two pairs to a row. */
  const LEDGER_ROWS = [
    ["items", "items", count], ["succeeded", "succeeded", count], ["failed", "failed", count],
    ["escalated", "escalated", count], ["escalation rate", "escalation_rate", percent],
    ["degraded", "degraded", count], ["held for review", "held_for_review", count],
    ["chunks", "chunks", count], ["wall time", "wall_s", (x) => `${Number(x || 0).toFixed(2)} s`],
    ["items / s", "items_per_s", count],
  ];
  /** Savings rows: [label, savings entry, format]. */
  const SAVINGS_ROWS = [
    ["calls", "calls", count], ["prompt tokens", "prompt_tokens", count],
    ["completion tokens", "completion_tokens", count], ["cost (USD)", "cost_usd", usd],
  ];

  function ledgerRows(ledger) {
    const rows = [];
    for (let i = 0; i < LEDGER_ROWS.length; i += 2) {
      const tr = document.createElement("tr");
      for (const [label, field, format] of LEDGER_ROWS.slice(i, i + 2)) {
        const th = document.createElement("th");
        th.textContent = label;
        tr.appendChild(th);
        cell(tr, format(ledger[field]), "num");
      }
      rows.push(tr);
    }
    return rows;
  }

  function savingsRows(savings) {
    return SAVINGS_ROWS.map(([label, entry, format]) => {
      const numbers = savings[entry];
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = label;
      tr.appendChild(th);
      cell(tr, format(numbers.spent), "num");
      cell(tr, format(numbers.baseline), "num");
      cell(tr, numbers.saved_fraction == null ? format(numbers.saved)
        : `${format(numbers.saved)} (${percent(numbers.saved_fraction)})`, "num");
      return tr;
    });
  }

  async function loadDetail() {
    const jobId = state.selected;
    if (!jobId) return;
    let detail;
    try {
      detail = await api(`v1/dashboard/jobs/${encodeURIComponent(jobId)}`);
    } catch (error) {
      if (error instanceof HttpError && error.status === 404) {
        $("job-hint").textContent = `No job ${jobId} (or not yours).`;
        $("job-hint").hidden = false;
        $("job-detail").hidden = true;
        return;
      }
      throw error;
    }
    if (jobId !== state.selected) return; // another job was clicked meanwhile
    $("job-title").textContent = jobId;
    $("job-hint").hidden = true;
    $("job-detail").hidden = false;

    $("ledger").tBodies[0].replaceChildren(...ledgerRows(detail.ledger));
    $("savings-table").tBodies[0].replaceChildren(...savingsRows(detail.job.savings));
    const skills = $("skills").tBodies[0];
    skills.replaceChildren(...detail.skills.map((s) => {
      const tr = document.createElement("tr");
      cell(tr, s.key);
      cell(tr, count(s.calls), "num");
      cell(tr, count(s.items), "num");
      cell(tr, count(s.escalated), "num");
      cell(tr, percent(s.escalation_rate), "num");
      cell(tr, s.seconds.toFixed(3), "num");
      return tr;
    }));
    $("savings-text").textContent = savingsText(detail.job.savings, detail.ledger);
    drawSavings(jobId, detail.job.savings);
  }

  function savingsText(savings, ledger) {
    const { calls, cost_usd: cost } = savings;
    if (!savings.baseline_recorded) {
      return "This job's ledger has no all-big-model baseline (recorded by newer versions).";
    }
    const parts = [`The runtime made ${count(calls.spent)} big-model calls where sending every ` +
      `item to the big model would have made ${count(calls.baseline)}`];
    if (calls.saved_fraction != null) parts.push(` (${percent(calls.saved_fraction)} fewer)`);
    parts.push(`; it cost ${usd(cost.spent)} against ${usd(cost.baseline)}`);
    if (ledger.baseline_price_model) parts.push(` at ${ledger.baseline_price_model} prices`);
    parts.push(".");
    return parts.join("");
  }

  function drawSavings(jobId, savings) {
    const { calls, cost_usd: cost } = savings;
    const datasets = [
      { label: "runtime", data: [calls.spent, null], yAxisID: "calls", backgroundColor: SPENT_COLOR },
      { label: "all-big-model baseline", data: [calls.baseline, null], yAxisID: "calls",
        backgroundColor: BASELINE_COLOR },
      { label: "runtime", data: [null, cost.spent], yAxisID: "cost", backgroundColor: SPENT_COLOR },
      { label: "all-big-model baseline", data: [null, cost.baseline], yAxisID: "cost",
        backgroundColor: BASELINE_COLOR },
    ];
    const canvas = $("savings-chart");
    canvas.dataset.job = jobId;
    if (state.savingsChart) {
      state.savingsChart.data.datasets.forEach((d, i) => { d.data = datasets[i].data; });
      state.savingsChart.update("none");
      return;
    }
    state.savingsChart = new Chart(canvas, {
      type: "bar",
      data: { labels: ["big-model calls", "big-model cost (USD)"], datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        skipNull: true,
        plugins: {
          legend: {
            labels: { filter: (item) => item.datasetIndex < 2 },
            onClick: (_event, item, legend) => { // one legend entry stands for both axes' bars
              const chart = legend.chart;
              for (const i of [item.datasetIndex, item.datasetIndex + 2]) {
                chart.setDatasetVisibility(i, !chart.isDatasetVisible(i));
              }
              chart.update();
            },
          },
          tooltip: {
            callbacks: {
              label: (ctx) => `${ctx.dataset.label}: ${ctx.dataset.yAxisID === "cost"
                ? usd(ctx.parsed.y) : count(ctx.parsed.y)}`,
            },
          },
        },
        scales: {
          calls: { position: "left", beginAtZero: true, title: { display: true, text: "calls" },
            ticks: { precision: 0 } },
          cost: { position: "right", beginAtZero: true, title: { display: true, text: "USD" },
            grid: { drawOnChartArea: false }, ticks: { callback: (v) => usd(v) } },
        },
      },
      plugins: [{ // tells tests (and anyone curious) which job the drawn chart shows
        id: "renderedFor",
        afterRender: (chart) => { chart.canvas.dataset.rendered = chart.canvas.dataset.job; },
      }],
    });
  }

  // -- escalation rate over time ---------------------------------------------------------------

  /** A time axis over [start, end] (seconds) in ms, its ticks on round steps (5 min .. 1 day). */
  function timeAxis(start, end) {
    const steps = [300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400].map((s) => s * 1000);
    const span = (end - start) * 1000;
    const step = steps.find((s) => span / s <= 8) || steps[steps.length - 1];
    const daily = step >= 86400 * 1000;
    return {
      min: Math.floor((start * 1000) / step) * step,
      max: Math.ceil((end * 1000) / step) * step,
      ticks: {
        stepSize: step,
        autoSkip: false,
        callback: (ms) => {
          const d = new Date(ms);
          return daily ? d.toLocaleDateString([], { month: "short", day: "numeric" })
            : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        },
      },
    };
  }

  async function loadEscalation() {
    const hours = $("window").value;
    const view = await api(`v1/dashboard/escalation?hours=${encodeURIComponent(hours)}`);
    $("escalation-empty").hidden = view.series.length > 0;
    const datasets = view.series.map((s, i) => ({
      label: s.key,
      data: s.points.map((p) => ({ x: p.t * 1000, y: 100 * p.rate, items: p.items })),
      borderColor: PALETTE[i % PALETTE.length],
      backgroundColor: PALETTE[i % PALETTE.length],
      pointRadius: 3,
      tension: 0.2,
    }));
    const x = timeAxis(view.since, view.until);
    const chart = state.escalationChart;
    if (chart) {
      chart.data.datasets = datasets;
      Object.assign(chart.options.scales.x, { min: x.min, max: x.max });
      Object.assign(chart.options.scales.x.ticks, x.ticks);
      chart.update("none");
      return;
    }
    state.escalationChart = new Chart($("escalation-chart"), {
      type: "line",
      data: { datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: true,
        scales: {
          x: { type: "linear", min: x.min, max: x.max, ticks: x.ticks },
          y: { beginAtZero: true, suggestedMax: 10,
            title: { display: true, text: "escalated items (%)" } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              title: (items) => items.length ? new Date(items[0].parsed.x).toLocaleString() : "",
              label: (ctx) => `${ctx.dataset.label}: ${ctx.parsed.y.toFixed(1)} % of ` +
                `${count(ctx.raw.items)} items`,
            },
          },
        },
      },
      plugins: [{ // how many series the drawn chart shows (tests wait for it)
        id: "renderedSeries",
        afterRender: (c) => { c.canvas.dataset.series = String(c.data.datasets.length); },
      }],
    });
  }

  // -- review queue ----------------------------------------------------------------------------

  async function loadReviews() {
    const status = $("reviews-status");
    const table = $("reviews");
    let reviews;
    try {
      reviews = await api("v1/reviews?status=waiting");
    } catch (error) {
      if (!(error instanceof HttpError) || error.status === 401) throw error;
      table.hidden = true;
      status.textContent = error.status === 404 ? "review queue unavailable"
        : error.status === 403 ? "review queue: this key may not read it"
          : `review queue: error ${error.status}`;
      return;
    }
    const waiting = Array.isArray(reviews) ? reviews : [];
    table.hidden = waiting.length === 0;
    status.textContent = waiting.length
      ? `${count(waiting.length)} item(s) waiting for a person` : "Nothing is waiting for review.";
    table.tBodies[0].replaceChildren(...waiting.map((r) => {
      const tr = document.createElement("tr");
      cell(tr, String(r.id), "num");
      cell(tr, r.job_id);
      cell(tr, String(r.item), "num");
      cell(tr, r.step);
      cell(tr, r.skill);
      cell(tr, fields(r.inputs), "fields");
      cell(tr, fields(r.proposed), "fields");
      cell(tr, percent(r.confidence), "num");
      cell(tr, since(r.created_at));
      return tr;
    }));
  }

  // -- provider bake-offs ----------------------------------------------------------------------

  const VERDICTS = {
    pays: "pays",
    unproven: "not proven",
    worse: "worse: held back",
  };

  async function loadProviders() {
    const status = $("providers-status");
    const table = $("providers");
    let view;
    try {
      view = await api("v1/dashboard/providers?limit=50");
    } catch (error) {
      if (!(error instanceof HttpError) || error.status === 401) throw error;
      table.hidden = true;
      status.textContent = `provider measurements: error ${error.status}`;
      return;
    }
    const rows = view.measurements || [];
    table.hidden = rows.length === 0;
    status.textContent = rows.length
      ? "Each provider on the items the small tiers are unsure of (orchestrator providers eval, and reviewers' answers)."
      : "No provider measured yet: orchestrator providers eval SKILL --csv LABELLED.csv";
    const secs = (x) => (x == null ? "–" : Number(x).toFixed(2));
    table.tBodies[0].replaceChildren(...rows.map((m) => {
      const tr = document.createElement("tr");
      cell(tr, m.skill);
      cell(tr, `${m.provider} (${m.model})`);
      cell(tr, count(m.items), "num");
      cell(tr, percent(m.small_accuracy), "num");
      cell(tr, percent(m.provider_accuracy), "num");
      cell(tr, count(m.failures), "num");
      cell(tr, usd(m.cost_usd), "num");
      cell(tr, `${secs(m.latency_p50_s)} / ${secs(m.latency_p95_s)}`, "num");
      const by = m.source === "review" ? " (reviews)" : m.source.endsWith("+ review") ? " (+ reviews)" : "";
      cell(tr, (VERDICTS[m.verdict] || m.verdict) + by, `verdict verdict-${m.verdict}`);
      cell(tr, since(m.created_at));
      return tr;
    }));
  }

  // -- the loop --------------------------------------------------------------------------------

  function report(error) {
    if (error instanceof HttpError && error.status === 401) {
      signOut("The service did not accept this key.");
      return;
    }
    if (error instanceof HttpError && error.status === 403) {
      signOut("This key lacks the jobs:read scope.");
      return;
    }
    if (error instanceof HttpError) {
      console.warn("dashboard:", error.status, error.problem);
      return;
    }
    if (error instanceof NetworkError) {
      $("offline").hidden = false; // the next poll tries again
      return;
    }
    console.error("dashboard:", error); // a bug in this page: say so loudly
  }

  async function refresh() {
    const session = state.session;
    state.timer = null;
    const results = await Promise.allSettled([loadJobs(), loadDetail(), loadEscalation(),
      loadReviews(), loadProviders()]);
    if (session !== state.session) return;
    const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason);
    failed.forEach(report);
    if (!failed.some((e) => e instanceof NetworkError)) $("offline").hidden = true;
    if (failed.length === 0) $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    if (session === state.session) state.timer = setTimeout(refresh, POLL_MS);
  }

  function signIn(key) {
    state.session += 1;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("login").hidden = true;
    $("login-error").hidden = true;
    $("dashboard").hidden = false;
    $("sign-out").hidden = false;
    refresh();
  }

  function signOut(message) {
    state.session += 1;
    sessionStorage.removeItem(KEY_STORAGE);
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    state.selected = null;
    $("job-detail").hidden = true;
    $("job-hint").hidden = false;
    $("job-hint").textContent = HINT;
    $("job-title").textContent = "";
    $("dashboard").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    $("login-error").hidden = !message;
    $("login-error").textContent = message || "";
    $("api-key").value = "";
    $("api-key").focus();
  }

  function start() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      signIn($("api-key").value.trim());
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    $("window").addEventListener("change", () => loadEscalation().catch(report));
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key !== null) signIn(key);
    else signOut("");
  }

  start();
})();
