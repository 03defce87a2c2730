// BizInsights dashboard: a small single-page script over the public JSON API (docs/API.md).
// The session is the HttpOnly cookie set at login; state-changing requests carry the CSRF token
// the API hands out with the session. Nothing here is trusted: the API checks everything.
"use strict";

const state = { csrf: null, user: null, org: null, timers: [] };

// A date range can come in the address (`/?from=2025-12-01&to=2025-12-31`), so a link opens
// the overview on it; the pickers change it from there.
{
  const params = new URLSearchParams(location.search);
  const day = /^\d{4}-\d{2}-\d{2}$/;
  if (day.test(params.get("from") || "") && day.test(params.get("to") || "")) {
    state.from = params.get("from");
    state.to = params.get("to");
  }
}
const $ = (sel, root = document) => root.querySelector(sel);
const main = () => $("#main");

// ---- API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
  }
}

// A request the rate limiter refused was not processed, so it is safe to send again once the
// budget allows; a wait longer than this is shown to the user instead.
const MAX_RETRY_WAIT_SECONDS = 15;

async function api(method, path, body, attempt = 0) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["x-csrf-token"] = state.csrf;
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 429 && attempt < 2) {
    const wait = Number(res.headers.get("retry-after") || "1");
    if (wait <= MAX_RETRY_WAIT_SECONDS) {
      await new Promise((resolve) => setTimeout(resolve, Math.max(wait, 1) * 1000));
      return api(method, path, body, attempt + 1);
    }
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// ---- Formatting ------------------------------------------------------------------------------

const ZERO_DECIMAL = new Set(["bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]);

function money(minor, currency) {
  if (minor === null || minor === undefined) return "—";
  const cur = (currency || "usd").toLowerCase();
  const units = ZERO_DECIMAL.has(cur) ? minor : minor / 100;
  return new Intl.NumberFormat(undefined, { style: "currency", currency: cur.toUpperCase() }).format(units);
}

function formatValue(card) {
  if (card.value === null || card.value === undefined) return "—";
  if (card.unit === "money") return money(card.value, card.currency);
  if (card.unit === "ratio") return `${(card.value * 100).toFixed(2)} %`;
  return new Intl.NumberFormat().format(card.value);
}

function isoDay(d) {
  return d.toISOString().slice(0, 10);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// ---- Charts (SVG) ----------------------------------------------------------------------------

/** A line (or bars) over `points` ([{date, value}]), scaled to a 600×200 view box. */
function chart(points, { bars = false, height = 200, axis = true } = {}) {
  const width = 600;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
  const values = points.map((p) => (typeof p.value === "number" ? p.value : 0));
  if (values.length === 0) {
    const t = svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis" });
    t.textContent = "No data in this range";
    root.append(t);
    return root;
  }
  const max = Math.max(...values, 0);
  const min = Math.min(...values, 0);
  const span = max - min || 1;
  const pad = axis ? 16 : 2;
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(values.length - (bars ? 0 : 1), 1);
  const y = (v) => height - pad - ((v - min) / span) * (height - 2 * pad);
  if (bars) {
    const w = Math.max((width - 2 * pad) / values.length - 1, 1);
    values.forEach((v, i) => {
      root.append(svg("rect", { x: x(i), y: Math.min(y(v), y(0)), width: w, height: Math.abs(y(0) - y(v)) || 1, fill: "#6ea8fe" }));
    });
  } else {
    const d = values.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    root.append(svg("path", { d, fill: "none", stroke: "#2f6fed", "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
  }
  if (axis) {
    for (const [label, at] of [[points[0].date, "start"], [points[points.length - 1].date, "end"]]) {
      const t = svg("text", { x: at === "start" ? pad : width - pad, y: height - 2, "text-anchor": at, class: "axis" });
      t.textContent = label;
      root.append(t);
    }
  }
  return root;
}

// ---- Pages -----------------------------------------------------------------------------------

function clearTimers() {
  state.timers.forEach(clearInterval);
  state.timers = [];
}

function authForm(kind) {
  const signup = kind === "signup";
  const error = el("p", { class: "error", id: "form-error" });
  const form = el("form", { class: "card auth", id: `${kind}-form` },
    el("h1", {}, signup ? "Create your account" : "Log in"),
    signup ? el("label", {}, "Name", el("input", { name: "name", required: "", autocomplete: "name" })) : "",
    signup ? el("label", {}, "Company", el("input", { name: "organization_name", required: "" })) : "",
    el("label", {}, "Email", el("input", { name: "email", type: "email", required: "", autocomplete: "email" })),
    el("label", {}, "Password", el("input", { name: "password", type: "password", required: "", minlength: signup ? "12" : undefined, autocomplete: signup ? "new-password" : "current-password" })),
    signup ? "" : el("label", {}, "MFA code (if enabled)", el("input", { name: "totp_code", inputmode: "numeric", autocomplete: "one-time-code" })),
    error,
    el("button", { type: "submit" }, signup ? "Sign up" : "Log in"),
    el("p", { class: "muted" }, signup ? el("a", { href: "#/login" }, "I have an account") : el("a", { href: "#/signup" }, "Create an account")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    const body = Object.fromEntries(new FormData(form));
    if (!body.totp_code) delete body.totp_code;
    try {
      const res = await api("POST", signup ? "/auth/signup" : "/auth/login", body);
      state.csrf = res.csrf_token;
      await loadSession();
      location.hash = signup ? "#/integrations" : "#/overview";
    } catch (err) {
      error.textContent = err.message;
    }
  });
  main().replaceChildren(form);
}

async function loadSession() {
  const me = await api("GET", "/me");
  state.user = me.user || me;
  state.csrf = me.csrf_token || state.csrf;
  const orgs = await api("GET", "/orgs");
  state.org = orgs.data[0] || null;
  $("#nav").hidden = false;
}

// A page that reloads on every change of range or currency may have an older load still in
// flight: each load takes a ticket, and only the newest may draw (an answer arriving late
// would otherwise paint the old range's numbers under the new range's pickers).
function tickets() {
  let newest = 0;
  return () => {
    const mine = ++newest;
    return () => mine === newest;
  };
}

function rangeInputs(onChange) {
  const to = new Date();
  const from = new Date(to.getTime() - 29 * 86400000);
  const fromInput = el("input", { type: "date", id: "range-from", value: state.from || isoDay(from) });
  const toInput = el("input", { type: "date", id: "range-to", value: state.to || isoDay(to) });
  const apply = el("button", { type: "button", id: "range-apply" }, "Apply");
  apply.addEventListener("click", () => {
    state.from = fromInput.value;
    state.to = toInput.value;
    onChange();
  });
  return [el("label", {}, "From", fromInput), el("label", {}, "To", toInput), apply];
}

function range() {
  const to = new Date();
  const from = new Date(to.getTime() - 29 * 86400000);
  return { from: state.from || isoDay(from), to: state.to || isoDay(to) };
}

async function overview() {
  const org = state.org.id;
  const toolbar = el("div", { class: "toolbar" });
  const cards = el("div", { class: "cards", id: "cards" }, el("p", { class: "loading" }, "Loading…"));
  const charts = el("div", { class: "charts" });
  const currency = el("select", { id: "currency" }, el("option", { value: "" }, `Reporting (${state.org.reporting_currency})`));
  for (const c of ["usd", "eur", "gbp", "jpy"]) currency.append(el("option", { value: c }, c.toUpperCase()));
  currency.value = state.currency || "";
  currency.addEventListener("change", () => { state.currency = currency.value; render(); });
  const lineMetric = el("select", { id: "line-metric" },
    [["stripe_mrr", "MRR"], ["stripe_arr", "ARR"], ["stripe_arpu", "ARPU"], ["stripe_subscriptions_active", "Active subscriptions"], ["stripe_customers_total", "Customers"]]
      .map(([k, label]) => el("option", { value: k }, label)));
  lineMetric.value = state.lineMetric || "stripe_mrr";
  lineMetric.addEventListener("change", () => { state.lineMetric = lineMetric.value; render(); });
  toolbar.append(...rangeInputs(() => render()), el("label", {}, "Currency", currency), el("label", {}, "Chart", lineMetric));
  main().replaceChildren(el("h1", {}, "Overview"), toolbar, cards, charts);
  const ticket = tickets();

  async function render() {
    const current = ticket();
    const { from, to } = range();
    const cur = state.currency ? `&currency=${state.currency}` : "";
    let dash;
    try {
      dash = await api("GET", `/orgs/${org}/dashboard?from=${from}&to=${to}${cur}`);
    } catch (err) {
      if (current()) cards.replaceChildren(el("p", { class: "error" }, err.message));
      return;
    }
    if (!current()) return;
    if (dash.cards.length === 0) {
      cards.replaceChildren(el("div", { class: "empty" }, "No data yet. ", el("a", { href: "#/integrations" }, "Connect a source"), " to see your numbers."));
      charts.replaceChildren();
      return;
    }
    cards.replaceChildren(...dash.cards.map((c) => {
      const change = c.change === null || c.change === undefined ? "" : `${c.change >= 0 ? "▲" : "▼"} ${(Math.abs(c.change) * 100).toFixed(1)} % vs previous`;
      return el("div", { class: "kpi", "data-card": c.key },
        el("div", { class: "label" }, c.label),
        el("div", { class: "value", "data-value": c.value === null ? "" : String(c.value) }, formatValue(c)),
        el("div", { class: `change ${c.change > 0 ? "up" : c.change < 0 ? "down" : ""}` }, change || " "),
        c.missing_rates ? el("div", { class: "muted" }, "Missing exchange rates") : "",
        chart(c.sparkline, { height: 40, axis: false }));
    }));
    const seriesCur = state.currency || "usd";
    const metric = lineMetric.value;
    const label = lineMetric.selectedOptions[0].textContent;
    let line, revenue;
    try {
      [line, revenue] = await Promise.all([
        api("GET", `/orgs/${org}/metrics/${metric}?from=${from}&to=${to}&currency=${seriesCur}`),
        api("GET", `/orgs/${org}/metrics/stripe_revenue?from=${from}&to=${to}&currency=${seriesCur}`),
      ]);
    } catch (err) {
      if (current()) charts.replaceChildren(el("p", { class: "error" }, err.message));
      return;
    }
    if (!current()) return;
    const money = line.unit === "money" ? ` (${seriesCur.toUpperCase()})` : "";
    charts.replaceChildren(
      el("div", { class: "panel chart", id: "chart-line" }, el("h2", {}, `${label}${money}`), chart(line.series)),
      el("div", { class: "panel chart", id: "chart-revenue" }, el("h2", {}, `Revenue per day (${seriesCur.toUpperCase()})`), chart(revenue.series, { bars: true })),
    );
  }
  await render();
}

async function stripePage() {
  const org = state.org.id;
  const toolbar = el("div", { class: "toolbar" });
  const grid = el("div", { class: "charts" });
  main().replaceChildren(el("h1", {}, "Stripe"), toolbar, grid);
  toolbar.append(...rangeInputs(() => render()));
  const metrics = [
    ["stripe_mrr", "MRR", false], ["stripe_revenue", "Revenue", true], ["stripe_net_revenue", "Net revenue", true],
    ["stripe_refunds_total", "Refunds", true], ["stripe_mrr_new", "New MRR", true], ["stripe_mrr_churned", "Churned MRR", true],
    ["stripe_subscriptions_active", "Active subscriptions", false], ["stripe_customers_total", "Customers", false],
  ];
  const ticket = tickets();
  async function render() {
    const current = ticket();
    const { from, to } = range();
    try {
      const panels = await Promise.all(metrics.map(async ([key, label, bars]) => {
        const cur = key === "stripe_subscriptions_active" || key === "stripe_customers_total" ? "" : "&currency=usd";
        const s = await api("GET", `/orgs/${org}/metrics/${key}?from=${from}&to=${to}${cur}`);
        return el("div", { class: "panel chart" }, el("h2", {}, cur ? `${label} (USD)` : label), chart(s.series, { bars }));
      }));
      if (current()) grid.replaceChildren(...panels);
    } catch (err) {
      if (current()) grid.replaceChildren(el("p", { class: "error" }, err.message));
    }
  }
  await render();
}

async function shopifyPage() {
  const org = state.org.id;
  const toolbar = el("div", { class: "toolbar" });
  const grid = el("div", { class: "charts" });
  const top = el("div", { class: "panel", id: "top-products" });
  main().replaceChildren(el("h1", {}, "Shopify"), toolbar, grid, top);
  toolbar.append(...rangeInputs(() => render()));
  // Money in the shop's currency: a shop sells in one.
  const metrics = [
    ["shopify_revenue_net", "Net sales", true], ["shopify_revenue_gross", "Gross sales", true],
    ["shopify_orders", "Orders", true], ["shopify_aov", "Average order value", false],
    ["shopify_returns", "Returns", true], ["shopify_refunds", "Refunds", true],
    ["shopify_customers_new", "New customers", true], ["shopify_customers_returning", "Returning customers", true],
  ];
  const ticket = tickets();
  async function render() {
    const current = ticket();
    const { from, to } = range();
    try {
      const [charts, products] = await Promise.all([
        Promise.all(metrics.map(async ([key, label, bars]) => {
          const s = await api("GET", `/orgs/${org}/metrics/${key}?from=${from}&to=${to}`);
          const cur = s.series.find((p) => p.currency);
          return el("div", { class: "panel chart", "data-metric": key }, el("h2", {}, cur ? `${label} (${cur.currency.toUpperCase()})` : label), chart(s.series, { bars }));
        })),
        api("GET", `/orgs/${org}/metrics/shopify/top-products?from=${from}&to=${to}&limit=10`),
      ]);
      if (!current()) return;
      grid.replaceChildren(...charts);
      top.replaceChildren(el("h2", {}, "Top products by net sales"), products.data.length === 0
        ? el("div", { class: "empty" }, "No sales in this range.")
        : el("table", {},
          el("thead", {}, el("tr", {}, ["Product", "Units", "Returned", "Net sales"].map((h) => el("th", {}, h)))),
          el("tbody", {}, products.data.map((p) => el("tr", {},
            el("td", {}, p.title || p.product_id), el("td", {}, String(p.units_sold)),
            el("td", {}, String(p.units_returned)), el("td", {}, money(p.net, p.currency)))))));
    } catch (err) {
      if (current()) grid.replaceChildren(el("p", { class: "error" }, err.message));
    }
  }
  await render();
}

async function integrationsPage() {
  const org = state.org.id;
  const list = el("div", { id: "integrations" });
  const error = el("p", { class: "error" });
  const keyForm = el("form", { class: "card", id: "connect-stripe" },
    el("h2", {}, "Connect Stripe with an API key"),
    el("label", {}, "Secret or restricted key", el("input", { name: "api_key", required: "", placeholder: "sk_live_… or rk_live_…", autocomplete: "off" })),
    error,
    el("button", { type: "submit" }, "Connect"),
    el("p", { class: "muted" }, "Or ", el("a", { href: `/api/v1/orgs/${org}/integrations/stripe/connect`, id: "stripe-connect" }, "connect through Stripe Connect"), "."),
  );
  keyForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      await api("POST", `/orgs/${org}/integrations`, { provider: "stripe", credentials: { api_key: keyForm.api_key.value } });
      keyForm.reset();
      await render();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  const shopForm = el("form", { class: "card", id: "install-shopify" },
    el("h2", {}, "Install on a Shopify store"),
    el("label", {}, "Store domain", el("input", { name: "shop", required: "", placeholder: "your-store.myshopify.com", pattern: "[a-zA-Z0-9][a-zA-Z0-9-]*\\.myshopify\\.com" })),
    el("button", { type: "submit" }, "Install"),
  );
  shopForm.addEventListener("submit", (e) => {
    e.preventDefault();
    // A plain navigation: the API answers with a redirect to the store's approval page.
    location.href = `/api/v1/orgs/${org}/integrations/shopify/install?shop=${encodeURIComponent(shopForm.shop.value.trim().toLowerCase())}`;
  });
  main().replaceChildren(el("h1", {}, "Integrations"), list, el("h2", {}, "Add a source"), keyForm, shopForm);

  // Polled only while a run is queued or running, so an idle page spends none of the user's
  // read budget (100 a minute by default).
  let busy = false;
  async function render() {
    let integrations;
    try {
      integrations = (await api("GET", `/orgs/${org}/integrations`)).data;
    } catch (err) {
      list.replaceChildren(el("p", { class: "error" }, err.message));
      return;
    }
    busy = false;
    if (integrations.length === 0) {
      list.replaceChildren(el("div", { class: "empty" }, "No sources connected yet."));
      return;
    }
    const rows = await Promise.all(integrations.map(async (i) => {
      let runs;
      try {
        runs = (await api("GET", `/orgs/${org}/integrations/${i.id}/sync-runs?limit=1`)).data;
      } catch (err) {
        busy = true; // try again on the next tick
        return el("div", { class: "panel", "data-integration": i.id }, el("h2", {}, i.display_name || i.provider), el("p", { class: "error" }, err.message));
      }
      const run = runs[0];
      if (run && (run.status === "queued" || run.status === "running")) busy = true;
      const bar = el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, el("div"));
      const percent = run ? run.percent : 0;
      bar.setAttribute("aria-valuenow", String(percent));
      bar.firstChild.style.width = `${percent}%`;
      const syncNow = el("button", { type: "button", class: "secondary", "data-sync": i.id }, "Sync now");
      syncNow.addEventListener("click", async () => {
        try { await api("POST", `/orgs/${org}/integrations/${i.id}/sync`, {}); } catch (err) { alert(err.message); }
        await render();
      });
      return el("div", { class: "panel", "data-integration": i.id },
        el("h2", {}, `${i.display_name || i.provider} — ${i.status}`),
        run ? el("p", { class: "muted" }, `Last run: ${run.mode}, ${run.status}`, el("span", { class: "percent", "data-percent": String(percent) }, ` (${percent} %)`)) : el("p", { class: "muted" }, "No sync yet"),
        bar,
        run ? el("div", { class: "resources" }, run.resources.map((r) => el("span", {}, `${r.done ? "✓" : "…"} ${r.name} ${r.stored}`))) : "",
        run && run.error ? el("p", { class: "error" }, `Last error: ${run.error}`) : "",
        i.status === "active" ? syncNow : "",
      );
    }));
    list.replaceChildren(...rows);
  }
  await render();
  // Live progress while anything is syncing.
  state.timers.push(setInterval(() => { if (busy) render(); }, 2000));
}

async function teamPage() {
  const org = state.org.id;
  const members = el("div", { id: "members" });
  const invites = el("div", { id: "invitations" });
  const error = el("p", { class: "error" });
  const form = el("form", { class: "card", id: "invite-form" },
    el("h2", {}, "Invite someone"),
    el("label", {}, "Email", el("input", { name: "email", type: "email", required: "" })),
    el("label", {}, "Role", el("select", { name: "role" }, ["viewer", "member", "admin"].map((r) => el("option", { value: r }, r)))),
    error,
    el("button", { type: "submit" }, "Send invitation"),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      await api("POST", `/orgs/${org}/invitations`, { email: form.email.value, role: form.role.value });
      form.reset();
      await render();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  main().replaceChildren(el("h1", {}, "Team"), members, el("h2", {}, "Pending invitations"), invites, form);
  async function render() {
    const m = (await api("GET", `/orgs/${org}/members`)).data;
    const canManage = ["owner", "admin"].includes(state.org.role);
    const roleCell = (x) => {
      if (!canManage || x.role === "owner" || (state.user && x.user_id === state.user.id)) return x.role;
      const select = el("select", { "data-member": x.user_id }, ["viewer", "member", "admin"].map((r) => el("option", { value: r }, r)));
      select.value = x.role;
      select.addEventListener("change", async () => {
        try { await api("PATCH", `/orgs/${org}/members/${x.user_id}`, { role: select.value }); } catch (err) { alert(err.message); }
        await render();
      });
      return select;
    };
    members.replaceChildren(el("table", { id: "member-list" }, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Email"), el("th", {}, "Role")),
      m.map((x) => el("tr", {}, el("td", {}, x.name), el("td", {}, x.email), el("td", {}, roleCell(x))))));
    let inv = [];
    try { inv = (await api("GET", `/orgs/${org}/invitations`)).data; } catch (_) { /* viewers cannot list them */ }
    invites.replaceChildren(inv.length
      ? el("table", { id: "invitation-list" }, inv.map((x) => el("tr", {}, el("td", {}, x.email), el("td", {}, x.role))))
      : el("div", { class: "empty" }, "No pending invitations."));
  }
  await render();
}

function placeholder(title, text) {
  main().replaceChildren(el("h1", {}, title), el("div", { class: "empty" }, text));
}

// ---- Router ----------------------------------------------------------------------------------

const pages = {
  overview,
  stripe: stripePage,
  shopify: shopifyPage,
  integrations: integrationsPage,
  team: teamPage,
  reports: () => placeholder("Reports", "No scheduled reports yet. PDF, Excel and CSV reports will be set up here."),
  alerts: () => placeholder("Alerts", "No alert rules yet. Alerts on your metrics will be set up here."),
};

async function route() {
  clearTimers();
  const page = (location.hash.replace(/^#\//, "") || "overview").split("?")[0];
  if (page === "login" || page === "signup") {
    $("#nav").hidden = true;
    return authForm(page);
  }
  if (!state.org) {
    try {
      await loadSession();
    } catch (_) {
      location.hash = "#/login";
      return;
    }
  }
  if (!state.org) return placeholder("No organisation", "You are not a member of any organisation.");
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  main().replaceChildren(el("p", { class: "loading" }, "Loading…"));
  try {
    await (pages[page] || overview)();
  } catch (err) {
    if (err.status === 401) location.hash = "#/login";
    else main().replaceChildren(el("p", { class: "error" }, err.message));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#logout").addEventListener("click", async () => {
    try { await api("POST", "/auth/logout", {}); } catch (_) { /* gone already */ }
    state.org = null;
    state.csrf = null;
    location.hash = "#/login";
  });
  window.addEventListener("hashchange", route);
  route();
});
