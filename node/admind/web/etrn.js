// ETRN for a domain on every node (POST etrn -> {id}; GET etrn?id=ID and
// the `etrn` event give each node's answer as it comes).

import {el, fill, utc, nowUnix, count} from "./util.js";

const POLL_MS = 1000;
const POLL_MAX = 180;   // three minutes per run at most
const KEEP = 5;         // runs shown

export class EtrnView {
  constructor(api, expectedNodes) {
    this.api = api;
    this.expectedNodes = expectedNodes;  // () -> alive node ids
    this.runs = [];  // newest first: {id, domain, started, results, polls}
    this.error = document.getElementById("etrn-error");
    document.getElementById("etrn-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.start();
    });
  }

  async start() {
    const input = document.getElementById("etrn-domain");
    const domain = input.value.trim();
    if (!domain) return;
    this.error.textContent = "";
    try {
      const reply = await this.api.change("POST", "etrn", {domain});
      const run = {id: reply.id, domain, started: nowUnix(), results: [],
        expected: this.expectedNodes(), polls: 0};
      this.runs.unshift(run);
      this.runs.length = Math.min(this.runs.length, KEEP);
      this.draw();
      this.poll(run);
    } catch (e) {
      this.error.textContent = `ETRN not started: ${e.message}`;
    }
  }

  finished(run) {
    const done = run.results.filter((r) => r.state !== "pending")
        .map((r) => r.node_id);
    return run.expected.every((n) => done.includes(n)) &&
        run.results.every((r) => r.state !== "pending");
  }

  async poll(run) {
    while (run.polls++ < POLL_MAX && !this.finished(run)) {
      try {
        this.merge(await this.api.get(`etrn?id=${encodeURIComponent(run.id)}`));
      } catch (e) {
        run.problem = e.message;
        this.draw();
      }
      if (this.finished(run)) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** A status reply, or the `etrn` event (one status or a list of them). */
  merge(data) {
    const list = Array.isArray(data) ? data :
      data && Array.isArray(data.requests) ? data.requests : [data];
    for (const st of list) {
      if (!st || !st.id) continue;
      const run = this.runs.find((r) => r.id === st.id);
      if (!run) continue;
      run.results = st.results || [];
      run.problem = null;
    }
    this.draw();
  }

  draw() {
    fill(document.getElementById("etrn-runs"), this.runs.map((run) => {
      const byNode = new Map(run.results.map((r) => [r.node_id, r]));
      for (const n of run.expected) {
        if (!byNode.has(n)) byNode.set(n, {node_id: n, state: "pending"});
      }
      const rows = [...byNode.values()].sort((a, b) =>
          a.node_id.localeCompare(b.node_id, "en", {numeric: true}));
      const done = this.finished(run);
      return el("div", {class: "etrn-run", dataset: {id: run.id}},
          el("h3", {}, el("span", {class: "mono"}, run.domain),
              el("span", {class: "muted", title: utc(run.started)},
                  ` ${done ? "done" : "running"} · request ${run.id}`)),
          run.problem ? el("p", {class: "error"}, run.problem) : null,
          el("table", {"aria-label": `ETRN ${run.domain} results`},
              el("thead", {}, el("tr", {},
                  el("th", {scope: "col"}, "Node"),
                  el("th", {scope: "col"}, "State"),
                  el("th", {scope: "col", class: "num"}, "Messages"),
                  el("th", {scope: "col"}, "Detail"))),
              el("tbody", {}, rows.map((r) => el("tr",
                  {dataset: {node: r.node_id, state: r.state}},
                  el("th", {scope: "row"}, r.node_id),
                  el("td", {}, el("span", {class: `badge etrn-${r.state}`},
                      r.state)),
                  el("td", {class: "num"},
                      r.state === "pending" ? "–" : count(r.messages ?? 0)),
                  el("td", {class: "reason"}, r.detail || ""))))));
    }));
  }
}
