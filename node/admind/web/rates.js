// Top sources fleet-wide (GET rates/top / the `rates` event): count in the
// window against the limit of the source's class, each node's share, the
// deferred/blocked state and the last hour per minute. The filter (kind,
// search) is asked of the server, so it finds sources beyond the top N.

import {count, duration, el, fill, sparkline} from "./util.js";

const LIMIT = 50;
const KIND_LABEL = {ip: "IP", net64: "/64", user: "user"};

/** The policy subject for a rate key: "ip4:192.0.2.7" -> "192.0.2.7". */
export function subjectOf(key) {
  return key.replace(/^(ip4|ip6|ip|net64|net|user):/, "");
}

export class RatesView {
  /** `api`: Api; `onBlock(subject)`: fills the policy form. */
  constructor(api, onBlock) {
    this.api = api;
    this.onBlock = onBlock;
    this.kind = document.getElementById("rates-kind");
    this.q = document.getElementById("rates-q");
    this.over = document.getElementById("rates-over");
    this.last = null;
    this.inflight = false;
    this.again = false;
    const form = document.getElementById("rates-filter");
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.refresh();
    });
    let timer = null;
    this.q.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.refresh(), 250);
    });
    this.kind.addEventListener("change", () => this.refresh());
    this.over.addEventListener("change", () => this.draw());
  }

  filtered() {
    return this.kind.value !== "all" || this.q.value.trim() !== "";
  }

  query() {
    const p = new URLSearchParams({kind: this.kind.value, limit: String(LIMIT)});
    const q = this.q.value.trim();
    if (q) p.set("q", q);
    return `rates/top?${p}`;
  }

  /** The `rates` event: the unfiltered top; with a filter, ask again. */
  update(data) {
    if (this.filtered()) this.refresh();
    else {
      this.last = data;
      this.draw();
    }
  }

  async refresh() {
    if (this.inflight) {
      this.again = true;
      return;
    }
    this.inflight = true;
    try {
      this.last = await this.api.get(this.query());
      this.draw();
    } catch (e) {
      document.getElementById("rates-summary").textContent = e.message;
    } finally {
      this.inflight = false;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    }
  }

  draw() {
    const data = this.last || {sources: []};
    let sources = data.sources || [];
    const q = this.q.value.trim().toLowerCase();
    if (q) sources = sources.filter((s) => s.key.toLowerCase().includes(q));
    if (this.kind.value !== "all") {
      sources = sources.filter((s) => s.kind === this.kind.value);
    }
    if (this.over.checked) sources = sources.filter((s) => s.state !== "ok");
    const body = document.getElementById("rates-body");
    if (!sources.length) {
      fill(body, el("tr", {}, el("td", {colspan: 9, class: "empty"},
          this.filtered() || this.over.checked ?
            "no source matches the filter" : "no traffic in the window")));
    } else {
      fill(body, sources.map((s) => this.row(s)));
    }
    const over = (data.sources || []).filter((s) => s.state !== "ok").length;
    document.getElementById("rates-summary").textContent =
        `window ${duration(data.window_s)}; ${sources.length} shown` +
        (over ? `, ${over} over the limit` : "");
  }

  row(s) {
    const nodes = [...(s.nodes || [])].sort((a, b) =>
        a.node_id.localeCompare(b.node_id, "en", {numeric: true}));
    const total = Math.max(1, nodes.reduce((a, n) => a + n.count, 0));
    const ratio = s.limit ? Math.min(1, s.count / s.limit) : 0;
    return el("tr", {dataset: {key: s.key, state: s.state},
      class: s.state !== "ok" ? "over" : null},
    el("th", {scope: "row", class: "mono"}, s.key),
    el("td", {}, KIND_LABEL[s.kind] || s.kind),
    el("td", {}, s.class || "–"),
    el("td", {class: "num"},
        count(s.count),
        s.limit ? el("span", {class: "meter", "aria-hidden": "true"},
            el("span", {style: `width:${(ratio * 100).toFixed(0)}%`})) : null),
    el("td", {class: "num"}, s.limit ? count(s.limit) : "none"),
    el("td", {}, el("span", {class: `badge rate-${s.state}`}, s.state)),
    el("td", {class: "contrib"},
        el("span", {class: "stack", "aria-hidden": "true"}, nodes.map((n, i) =>
          el("span", {class: `seg c${i % 6}`,
            style: `width:${(100 * n.count / total).toFixed(1)}%`}))),
        el("span", {class: "contrib-text"}, nodes.map((n, i) =>
          el("span", {class: "contrib-node", dataset: {node: n.node_id}},
              el("span", {class: `dot c${i % 6}`, "aria-hidden": "true"}),
              `${n.node_id} ${count(n.count)}`)))),
    el("td", {}, sparkline(s.spark || [], `${s.key} per minute`)),
    el("td", {}, el("button", {type: "button", class: "small",
      "aria-label": `Block ${s.key}`,
      onclick: () => this.onBlock(subjectOf(s.key))}, "Block…")));
  }
}
