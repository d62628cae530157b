// safedeploy dashboard: the list of rollouts (`/`) and the page of one (`/<namespace>/<name>`),
// both kept live by server-sent events from the server's watches. Plain DOM, no framework.
import { metricPlot, weightPlot } from "/_/plots.js";

const app = document.getElementById("app");
const live = document.getElementById("live");
const crumb = document.getElementById("crumb");

// Builds an element: h("td", {class: "x"}, "text", child, ...).
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function when(at) {
  if (!at) return "";
  const date = new Date(at);
  return isNaN(date) ? at : date.toLocaleString();
}

function subscribe(url, handlers) {
  const source = new EventSource(url);
  source.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  source.onerror = () => { live.textContent = "reconnecting…"; live.classList.remove("on"); };
  for (const [kind, handle] of Object.entries(handlers)) {
    source.addEventListener(kind, (event) => handle(JSON.parse(event.data)));
  }
  return source;
}

// ---- the list ----------------------------------------------------------------------------

function listPage() {
  crumb.textContent = "rollouts";
  const rows = new Map();
  const body = h("tbody");
  const problem = h("p", { class: "error" });
  app.replaceChildren(
    h("section", { class: "card" },
      h("table", { id: "rollouts" },
        h("thead", {}, h("tr", {},
          ["Namespace", "Name", "Phase", "Weight", "Step", "Stable", "Canary", "Message"]
            .map((t) => h("th", {}, t)))),
        body),
      problem));
  const key = (r) => `${r.namespace}/${r.name}`;
  const redraw = () => {
    const sorted = [...rows.values()].sort((a, b) => key(a).localeCompare(key(b)));
    body.replaceChildren(...sorted.map((r) => h("tr", { "data-rollout": key(r) },
      h("td", {}, r.namespace),
      h("td", {}, h("a", { href: `/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}` }, r.name)),
      h("td", { class: `phase phase-${r.phase}` }, r.phase),
      h("td", {}, `${r.weight}%`),
      h("td", {}, r.step ?? ""),
      h("td", { class: "mono" }, r.stable ?? ""),
      h("td", { class: "mono" }, r.canary ?? ""),
      h("td", { class: "note" }, r.message ?? ""))));
    if (sorted.length === 0) body.append(h("tr", {}, h("td", { colspan: 8, class: "note" }, "no SafeDeployments here")));
  };
  subscribe("/_/api/watch", {
    reset: () => rows.clear(),
    summary: (r) => { rows.set(key(r), r); redraw(); problem.textContent = ""; },
    deleted: (r) => { rows.delete(key(r)); redraw(); },
    ready: redraw,
    problem: (p) => { problem.textContent = p.error; },
  });
}

// ---- one rollout -------------------------------------------------------------------------

async function act(namespace, name, action, query = "") {
  const url = `/_/api/rollouts/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/${action}${query}`;
  const response = await fetch(url, { method: "POST", headers: { "X-Safedeploy-Action": "1" } });
  const body = await response.json().catch(() => ({}));
  const status = document.getElementById("action-status");
  status.textContent = response.ok ? body.message : `${response.status}: ${body.error ?? "refused"}`;
  status.className = response.ok ? "note" : "error";
}

function actions(view) {
  const { namespace, name } = view.summary;
  const a = view.actions;
  const buttons = [];
  if (a.promote) buttons.push(h("button", { "data-action": "promote", onclick: () => act(namespace, name, "promote") }, "Promote"));
  if (a.promote) buttons.push(h("button", { "data-action": "promote-full", onclick: () => act(namespace, name, "promote-full") }, "Promote fully"));
  if (a.abort) buttons.push(h("button", { class: "danger", "data-action": "abort", onclick: () => act(namespace, name, "abort") }, "Abort"));
  if (a.retry) buttons.push(h("button", { "data-action": "retry", onclick: () => act(namespace, name, "retry") }, "Retry"));
  return h("section", { class: "card actions", id: "actions" },
    buttons.length ? buttons : h("span", { class: "note" },
      view.mayAct ? "no action applies now" : "read-only: your RBAC does not allow patching this SafeDeployment"),
    h("div", { id: "action-status", class: "note" }));
}

function timeline(view) {
  return h("section", { class: "card" }, h("h2", {}, "Timeline"),
    h("ol", { class: "timeline", id: "timeline" }, view.timeline.map((e) =>
      h("li", { class: `tone-${e.tone}`, "data-source": e.source },
        h("time", { datetime: e.at }, when(e.at)),
        h("div", {},
          h("span", { class: "title" }, e.title),
          e.actor && h("span", { class: "actor" }, `by ${e.actor}`),
          e.detail && h("div", { class: "note" }, e.detail))))));
}

// A content digest as people compare them: `sha256:` and the first 12 hex digits.
const short = (digest) => digest.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]*$/, "$1…");

function revisions(view) {
  const { namespace, name } = view.summary;
  return h("section", { class: "card" }, h("h2", {}, "Revisions"),
    h("table", { id: "revisions" },
      h("thead", {}, h("tr", {}, ["#", "Digest", "Role", "Changes", "Outcomes", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, view.revisions.map((r) => h("tr", {},
        h("td", {}, r.number),
        h("td", { class: "mono" }, r.hash, r.previousHash && h("div", { class: "note" }, `was ${r.previousHash}`)),
        h("td", {}, r.role),
        h("td", { class: "changes mono" }, r.changes.length
          ? r.changes.map((c) => h("div", {}, `${c.container}: `, c.from && h("del", {}, c.from), " → ", c.to && h("ins", {}, c.to)))
          : Object.entries(r.images).map(([c, i]) => h("div", {}, `${c}=${i}`)),
          r.configChanges.map((c) => h("div", { class: "config-change" }, `${c.object}: `,
            c.from && h("del", {}, short(c.from)), " → ", c.to ? h("ins", {}, short(c.to)) : "no longer referenced"))),
        h("td", {}, r.outcomes.join(", ")),
        h("td", {}, view.actions.rollback && r.role !== "stable" && h("button", {
          "data-action": "rollback",
          onclick: () => act(namespace, name, "rollback", `?toRevision=${r.number}`),
        }, "Roll back to this")))))));
}

function health(view) {
  if (!view.health.length) return null;
  return h("section", { class: "card" }, h("h2", {}, "Health signals"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Signal", "Canary", "Baseline", "Target / acceptable / critical", "Verdict", "At"].map((t) => h("th", {}, t)))),
      h("tbody", {}, view.health.map((s) => h("tr", {},
        h("td", {}, s.signal), h("td", {}, s.value), h("td", {}, s.baseline ?? ""),
        h("td", {}, `${s.thresholds.target} / ${s.thresholds.acceptable} / ${s.thresholds.critical}`),
        h("td", { class: `verdict-${s.verdict}` }, s.verdict), h("td", {}, when(s.measuredAt)))))));
}

function rolloutPage(namespace, name) {
  crumb.replaceChildren(h("a", { href: "/" }, "rollouts"), ` / ${namespace} / ${name}`);
  const render = (view) => {
    const s = view.summary;
    const att = view.attestation;
    const metrics = h("div", { class: "plots", id: "metrics" });
    const weights = h("div", { id: "weights" });
    app.replaceChildren(
      h("section", { class: "card summary", id: "summary" },
        h("div", {}, h("span", {}, "phase"), h("b", { class: `phase phase-${s.phase}` }, s.phase)),
        h("div", {}, h("span", {}, "canary weight"), `${s.weight}%`),
        h("div", {}, h("span", {}, "step"), s.step ?? "–"),
        h("div", {}, h("span", {}, "stable"), h("code", {}, s.stable ?? "–")),
        h("div", {}, h("span", {}, "canary"), h("code", {}, s.canary ?? "–")),
        h("div", {}, h("span", {}, "attestation"), att
          ? (att.verified && att.reason === "NotRequired"
            ? h("b", { title: att.message }, "not required")
            : h("b", { class: att.verified ? "verdict-Pass" : "verdict-Fail", title: att.message }, att.verified ? "verified" : att.reason))
          : "–"),
        s.message && h("div", { class: "note" }, h("span", {}, "message"), s.message)),
      actions(view),
      h("section", { class: "card" }, h("h2", {}, "Steps"),
        h("ol", { class: "steps", id: "steps" }, view.steps.map((step) =>
          h("li", { class: step.state }, `${step.position}. ${step.text}`)))),
      health(view),
      timeline(view),
      h("section", { class: "card" }, h("h2", {}, "Canary weight"), weights),
      view.metrics.length ? h("section", { class: "card" }, h("h2", {}, "Metrics"), metrics) : null,
      revisions(view));
    weightPlot(weights, view.weights);
    for (const plot of view.metrics) metricPlot(metrics, plot);
    document.body.dataset.phase = s.phase;
  };
  subscribe(`/_/api/rollouts/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/watch`, {
    rollout: render,
    deleted: () => app.replaceChildren(h("p", { class: "error" }, `${namespace}/${name} was deleted`)),
    problem: (p) => app.prepend(h("p", { class: "error" }, p.error)),
  });
}

const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
if (parts.length === 2) rolloutPage(parts[0], parts[1]);
else listPage();
