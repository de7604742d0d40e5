// Members: every node of the fleet as this node's cluster agent sees it
// (GET members / the `members` event).

import {duration, el, fill, millis} from "./util.js";

const ORDER = {alive: 0, suspect: 1, dead: 2, left: 3};

export function renderMembers(data) {
  const members = [...(data.members || [])].sort((a, b) =>
      a.node_id.localeCompare(b.node_id, "en", {numeric: true}));
  const body = document.getElementById("members-body");
  fill(body, members.map((m) => el("tr",
      {dataset: {node: m.node_id, state: m.state}},
      el("th", {scope: "row"},
          el("span", {class: "node-id"}, m.node_id), " ",
          m.self ? el("span", {class: "tag"}, "this node") : null,
          !m.self && m.admin_url && m.state === "alive" ?
            el("a", {href: m.admin_url, class: "tag link",
              "aria-label": `Open the dashboard of ${m.node_id}`}, "open") :
            null),
      el("td", {}, el("span", {class: `badge state-${m.state}`}, m.state)),
      el("td", {class: "mono"}, m.address || "–"),
      el("td", {class: "num", title: `incarnation ${m.incarnation ?? "–"}`},
          m.generation ?? "–"),
      el("td", {class: "num"}, duration(m.uptime_s)),
      el("td", {class: "mono"}, m.version || "–"),
      el("td", {class: "num"}, m.self ? "–" : millis(m.gossip_lag_ms)))));
  const by = {};
  for (const m of members) by[m.state] = (by[m.state] || 0) + 1;
  const parts = Object.keys(by).sort((a, b) => (ORDER[a] ?? 9) - (ORDER[b] ?? 9))
      .map((s) => `${by[s]} ${s}`);
  document.getElementById("members-summary").textContent =
      `${members.length} ${members.length === 1 ? "node" : "nodes"}: ` +
      parts.join(", ");
  return members;
}
