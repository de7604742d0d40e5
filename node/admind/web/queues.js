// Queues per node: each node's scheduler summary, published by its admind
// into the fleet status and read back here (GET queues / `queues`).

import {count, duration, el, fill, nowUnix, utc} from "./util.js";

const STALE_S = 60;  // a node that has not published for a minute

export function renderQueues(data) {
  const nodes = [...(data.nodes || [])].sort((a, b) =>
      a.node_id.localeCompare(b.node_id, "en", {numeric: true}));
  const now = nowUnix();
  fill(document.getElementById("queues-body"), nodes.map((n) => {
    const stale = n.updated_unix && now - n.updated_unix > STALE_S;
    const dests = (n.top_destinations || []).slice(0, 3);
    return el("tr", {dataset: {node: n.node_id}, class: stale ? "stale" : null},
        el("th", {scope: "row"}, el("span", {class: "node-id"}, n.node_id),
            stale ? el("span", {class: "tag warn",
              title: `last report ${utc(n.updated_unix)}`}, "stale") : null),
        el("td", {class: "num"}, count(n.messages)),
        el("td", {class: "num"}, count(n.recipients)),
        el("td", {class: "num"}, count(n.threads)),
        el("td", {class: "num"}, n.messages ? duration(n.oldest_age_s) : "–"),
        el("td", {class: "dests"}, dests.length ? dests.map((d) =>
          el("span", {class: "dest", title: `${d.channel}/${d.host}`},
              el("span", {class: "mono"}, `${d.channel}/${d.host}`),
              ` ${count(d.recipients)}`)) : "–"));
  }));
  const total = nodes.reduce((a, n) => a + (n.messages || 0), 0);
  const rcpts = nodes.reduce((a, n) => a + (n.recipients || 0), 0);
  document.getElementById("queues-summary").textContent =
      `${count(total)} messages, ${count(rcpts)} recipients`;
}
