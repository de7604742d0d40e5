// A stand-in for admind's JSON API (docs/admin-api.md) serving the real
// page from node/admind/web: for working on the page without a fleet, and
// for the page-only run of dashboard.mjs (`node dashboard.mjs --mock`).
//
//   node mock_admind.mjs [port]     # prints "listening PORT"
//
// Three nodes n1..n3; POST/DELETE need Basic root:secret. Its state moves
// a little every 2 s so the live updates show. Test controls (no auth):
// POST /api/v1/mock/kill {"node": "n2"} marks a node dead;
// POST /api/v1/mock/stream {"up": false} drops every event stream and
// answers 503 to new ones until {"up": true}.

import {createServer} from "node:http";
import {readFile} from "node:fs/promises";
import {extname, join, normalize} from "node:path";
import {fileURLToPath} from "node:url";

const WEB = fileURLToPath(new URL("../../node/admind/web/", import.meta.url));
const TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript",
  ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"};
const AUTH = "Basic " + Buffer.from("root:secret").toString("base64");
const NODES = ["n1", "n2", "n3"];
const start = Math.floor(Date.now() / 1000);
const now = () => Math.floor(Date.now() / 1000);

const state = {
  dead: new Set(),
  streamUp: true,   // false: /events answers 503 (the page must poll)
  policy: [{key: "198.51.100.0/24", action: "reject", reason: "open proxies",
    author_node: "n2", created_unix: start - 3000, expires_unix: start + 600}],
  etrn: new Map(),
  tick: 0,
};

function spark(seed, n = 60) {
  return Array.from({length: n}, (_, i) =>
    Math.max(0, Math.round(seed * (1 + Math.sin((i + seed) / 6)) +
        (i > 50 ? seed * 2 : 0))));
}

function members() {
  return {members: NODES.map((id, i) => ({
    node_id: id, state: state.dead.has(id) ? "dead" : "alive",
    address: `127.0.0.1:${7946 + i}`, generation: start + i, incarnation: i,
    uptime_s: now() - start + 3600 * i, version: "0.4.0-dev",
    gossip_lag_ms: i === 0 ? 0 : 40 + 17 * i, admin_url: "", self: i === 0,
  }))};
}

function rates(q) {
  const sources = [
    {key: "ip4:203.0.113.9", kind: "ip", class: "custnet", count: 12 +
      state.tick % 3, limit: 10, state: "deferred",
    nodes: [{node_id: "n1", count: 7}, {node_id: "n2", count: 5}],
    spark: spark(2)},
    {key: "ip6:2001:db8:1:2::/64", kind: "net64", class: "default",
      count: 41, limit: 100, state: "ok",
      nodes: [{node_id: "n1", count: 20}, {node_id: "n2", count: 11},
        {node_id: "n3", count: 10}], spark: spark(5)},
    {key: "user:alice@example.com", kind: "user", class: "submission",
      count: 250, limit: 200, state: "blocked",
      nodes: [{node_id: "n3", count: 250}], spark: spark(9)},
    {key: "ip4:192.0.2.44", kind: "ip", class: "default", count: 3,
      limit: 100, state: "ok", nodes: [{node_id: "n2", count: 3}],
      spark: spark(1)},
  ].filter((s) => (q.get("kind") || "all") === "all" || s.kind === q.get("kind"))
    .filter((s) => !q.get("q") || s.key.includes(q.get("q")));
  return {window_s: 3600, sources};
}

function queues() {
  return {nodes: NODES.map((id, i) => ({node_id: id, messages: 12 * i + 3,
    recipients: 15 * i + 4, threads: i + 1, oldest_age_s: 600 * (i + 1),
    top_destinations: [{channel: "smtp", host: "mx.example.net",
      recipients: 9 * i + 2}, {channel: "smtp-etrn", host: "etrn.test",
      recipients: i + 1}], updated_unix: now() - 3}))};
}

function history() {
  const minutes = Array.from({length: 60}, (_, i) =>
    (Math.floor(now() / 60) - 59 + i) * 60);
  const one = (k) => ({received: spark(3 * k), delivered: spark(2.6 * k),
    deferred: spark(0.5 * k), bounced: spark(0.2 * k),
    rejected_policy: spark(0.3 * k), rejected_rate: spark(0.4 * k)});
  const series = {fleet: one(3)};
  NODES.forEach((id, i) => (series[id] = one(i + 1)));
  return {minutes, series};
}

function policy() {
  return {entries: state.policy.filter((e) => !e.expires_unix ||
    e.expires_unix > now())};
}

function etrnStatus(id) {
  const run = state.etrn.get(id);
  if (!run) return null;
  const age = Date.now() - run.started;
  return {id, domain: run.domain, results: NODES.map((n, i) => ({node_id: n,
    state: age > 700 * (i + 1) ? "done" : "pending",
    messages: age > 700 * (i + 1) ? i + 1 : 0,
    detail: age > 700 * (i + 1) ? `250 ETRN ${run.domain}: ${i + 1} ` +
      "recipients scheduled" : ""}))};
}

const streams = new Set();
function send(res, name, data) {
  res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}
function everything(res) {
  send(res, "members", members());
  send(res, "rates", rates(new URLSearchParams("kind=all")));
  send(res, "queues", queues());
  send(res, "history", history());
  send(res, "policy", policy());
}
setInterval(() => {
  state.tick++;
  for (const res of streams) everything(res);
}, 2000).unref();

function json(res, code, data) {
  res.writeHead(code, {"Content-Type": "application/json",
    "Cache-Control": "no-store"});
  res.end(JSON.stringify(data));
}

async function body(req) {
  let text = "";
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 65536) break;
  }
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  const p = url.pathname;
  if (p.startsWith("/api/v1/")) {
    const what = p.slice(8);
    if (req.method === "POST" && what.startsWith("mock/")) {
      // The test's controls (no auth): kill a node, stop the stream.
      const b = (await body(req)) || {};
      if (what === "mock/kill") state.dead.add(b.node);
      if (what === "mock/stream") {
        state.streamUp = !!b.up;
        if (!state.streamUp) {
          for (const r of streams) r.destroy();
          streams.clear();
        }
      }
      return json(res, 200, {ok: true});
    }
    if (req.method !== "GET" && req.headers.authorization !== AUTH) {
      return json(res, 401, {error: "authentication required"});
    }
    if (req.method === "GET") {
      if (what === "node") {
        return json(res, 200, {node_id: "n1", version: "0.4.0-dev",
          hostname: "mock", uptime_s: now() - start, ready: true,
          draining: false, cluster: true, processes: [], spool_free_kib: 1});
      }
      if (what === "members") return json(res, 200, members());
      if (what === "rates/top") return json(res, 200, rates(url.searchParams));
      if (what === "queues") return json(res, 200, queues());
      if (what === "history") return json(res, 200, history());
      if (what === "policy") return json(res, 200, policy());
      if (what === "etrn") {
        const st = etrnStatus(url.searchParams.get("id"));
        return st ? json(res, 200, st) : json(res, 404, {error: "no such id"});
      }
      if (what === "events") {
        if (!state.streamUp) return json(res, 503, {error: "stream down"});
        res.writeHead(200, {"Content-Type": "text/event-stream",
          "Cache-Control": "no-store"});
        streams.add(res);
        req.on("close", () => streams.delete(res));
        return everything(res);
      }
    }
    if (req.method === "POST" && what === "policy") {
      const b = await body(req);
      if (!b || !b.key || !b.action) return json(res, 400, {error: "bad entry"});
      state.policy = state.policy.filter((e) => e.key !== b.key);
      state.policy.push({key: b.key, action: b.action, reason: b.reason || "",
        author_node: "n1", created_unix: now(),
        expires_unix: b.ttl_s ? now() + b.ttl_s : 0});
      for (const r of streams) send(r, "policy", policy());
      return json(res, 200, {ok: true});
    }
    if (req.method === "DELETE" && what === "policy") {
      const key = url.searchParams.get("key");
      const before = state.policy.length;
      state.policy = state.policy.filter((e) => e.key !== key);
      if (state.policy.length === before) return json(res, 404, {error: "no such entry"});
      for (const r of streams) send(r, "policy", policy());
      return json(res, 200, {ok: true});
    }
    if (req.method === "POST" && what === "etrn") {
      const b = await body(req);
      if (!b || !b.domain) return json(res, 400, {error: "no domain"});
      const id = `e${state.etrn.size + 1}`;
      state.etrn.set(id, {domain: b.domain, started: Date.now()});
      return json(res, 200, {id});
    }
    return json(res, 404, {error: "no such endpoint"});
  }
  const file = normalize(p === "/" ? "index.html" : p.slice(1));
  if (file.startsWith("..")) return json(res, 404, {error: "not found"});
  try {
    const data = await readFile(join(WEB, file));
    res.writeHead(200, {"Content-Type": TYPES[extname(file)] ||
      "application/octet-stream", "Cache-Control": "no-cache"});
    res.end(data);
  } catch {
    json(res, 404, {error: "not found"});
  }
});

server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
