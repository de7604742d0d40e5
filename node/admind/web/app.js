// The fleet dashboard: loads every view once by GET, then follows the
// server-sent events (api/v1/events) and redraws only what changed. While
// the stream is down it polls, so the page never needs a reload.

import {Api, EventStream} from "./api.js";
import {Charts} from "./charts.js";
import {askLogin} from "./dialogs.js";
import {EtrnView} from "./etrn.js";
import {renderMembers} from "./members.js";
import {PolicyView} from "./policy.js";
import {renderQueues} from "./queues.js";
import {RatesView} from "./rates.js";
import {duration} from "./util.js";

const POLL_MS = 5000;       // while the event stream is down
const NODE_POLL_MS = 10000; // the header line (ready, draining)

const api = new Api(askLogin);
let members = [];

const policy = new PolicyView(api, () => refresh("policy"));
const rates = new RatesView(api, (subject) => policy.prefill(subject));
const etrn = new EtrnView(api, () =>
  members.filter((m) => m.state === "alive").map((m) => m.node_id));
const charts = new Charts();

const views = {
  members: {path: "members", show: (d) => (members = renderMembers(d))},
  rates: {path: "rates/top?kind=all&limit=20", show: (d) => rates.update(d)},
  policy: {path: "policy", show: (d) => policy.update(d)},
  queues: {path: "queues", show: (d) => renderQueues(d)},
  history: {path: "history?minutes=60", show: (d) => charts.update(d)},
};

function guard(name, fn) {
  return (data) => {
    const summary = document.getElementById(`${name}-summary`);
    if (data && typeof data.error === "string") {
      // The server could not answer for this view (e.g. the policy
      // overlay of a node without a cluster agent): say why, keep the rest.
      if (summary) summary.textContent = data.error;
      return;
    }
    try {
      fn(data);
      document.getElementById(name)?.classList.remove("failed");
    } catch (e) {
      console.error(`${name}:`, e);
      document.getElementById(name)?.classList.add("failed");
    }
  };
}

async function refresh(name) {
  const v = views[name];
  try {
    guard(name, v.show)(await api.get(v.path));
  } catch (e) {
    document.getElementById(`${name}-summary`)?.replaceChildren(e.message);
  }
}

function refreshAll() {
  for (const name of Object.keys(views)) refresh(name);
}

async function showNode() {
  const line = document.getElementById("node-line");
  try {
    const n = await api.get("node");
    const flags = [n.ready ? "ready" : "not ready"];
    if (n.draining) flags.push("draining");
    line.textContent = `${n.node_id} (${n.hostname}) · ${n.version} · ` +
        `up ${duration(n.uptime_s)} · ${flags.join(", ")}` +
        (n.cluster ? "" : " · single node");
    line.dataset.ready = String(!!n.ready);
    document.title = `zmnode fleet · ${n.node_id}`;
  } catch (e) {
    line.textContent = `this node: ${e.message}`;
    line.dataset.ready = "false";
  }
}

function showAuth(user) {
  document.getElementById("who").textContent = user ? `signed in as ${user}` : "";
  document.getElementById("sign-in").hidden = !!user;
  document.getElementById("sign-out").hidden = !user;
}

function setupAuthButtons() {
  api.onAuthChange(showAuth);
  showAuth(api.user);
  document.getElementById("sign-in").addEventListener("click", async () => {
    const cred = await askLogin("Sign in with a scheduler.auth user.");
    if (cred) api.setCredentials(cred.user, cred.password);
  });
  document.getElementById("sign-out").addEventListener("click",
      () => api.setCredentials(null));
}

let pollTimer = null;
function setLive(state) {
  const live = document.getElementById("live");
  live.dataset.state = state;
  live.textContent = {live: "live", connecting: "connecting…",
    down: "reconnecting…"}[state] || state;
  if (state === "live") {
    clearInterval(pollTimer);
    pollTimer = null;
  } else if (!pollTimer) {
    pollTimer = setInterval(refreshAll, POLL_MS);
  }
}

function main() {
  setupAuthButtons();
  refreshAll();
  showNode();
  setInterval(showNode, NODE_POLL_MS);
  const handlers = {};
  for (const [name, v] of Object.entries(views)) {
    handlers[name] = guard(name, v.show);
  }
  handlers.etrn = (d) => etrn.merge(d);
  new EventStream(handlers, setLive, refreshAll).start();
}

main();
