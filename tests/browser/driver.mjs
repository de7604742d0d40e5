// Drives the dashboard in Debian's headless Chromium for the integration
// test (tests/integration/test_dashboard.py). One JSON command per stdin
// line, one JSON answer per stdout line: {"ok": true, "result": ...} or
// {"ok": false, "error": "..."}. Every element is found by its role and
// accessible name, as a user would; every action has a bounded timeout.
// The Python side polls the snapshots (members, source, ...) for what it
// waits for.
//
//   {"cmd": "open", "url": "http://127.0.0.1:8025/"}
//   {"cmd": "members"}                -> {"n1": "alive", ...}
//   {"cmd": "source", "key": "ip4:127.0.0.2"}
//        -> null | {"state": "deferred", "count": 12, "nodes": {"n1": 6, ...}}
//   {"cmd": "policy_add", "key": K, "action": "reject", "reason": R,
//    "user": U, "password": P}       (confirms; signs in when asked)
//   {"cmd": "policy"}                 -> {"K": "reject", ...}
//   {"cmd": "etrn", "domain": D, "user": U, "password": P}
//   {"cmd": "etrn_results", "domain": D} -> {"n1": "done", ...}
//   {"cmd": "live"}                   -> "live" | "connecting…" | "reconnecting…"
//   {"cmd": "screenshot", "path": "/tmp/x.png"}
//   {"cmd": "close"}
//
// Env: ZM_CHROMIUM (default /usr/bin/chromium).

import {createInterface} from "node:readline";
import {chromium} from "playwright-core";

const ACTION_MS = 15000;
let browser = null;
let page = null;
const problems = [];  // page errors, reported with every answer

function region(name) {
  return page.getByRole("region", {name});
}

async function rowsOf(table) {
  // Each body row: [row header text, ...cell texts].
  return table.locator("tbody tr").evaluateAll((trs) => trs.map((tr) =>
    [...tr.children].map((c) => c.textContent.trim())));
}

async function open({url, width = 1366, height = 768}) {
  browser = await chromium.launch({
    executablePath: process.env.ZM_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    timeout: 60000,
  });
  page = await browser.newPage({viewport: {width, height}});
  page.setDefaultTimeout(ACTION_MS);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // Script errors count; a refused request ("Failed to load resource:
  // ... 503") is the server's answer, which the test checks by itself.
  page.on("console", (m) => {
    if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) {
      problems.push(`console: ${m.text()}`);
    }
  });
  await page.goto(url, {waitUntil: "domcontentloaded"});
  await page.getByRole("heading", {name: "Members"}).waitFor();
  return page.url();
}

async function members() {
  const table = region("Members").getByRole("table");
  const rows = await table.locator("tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [tr.querySelector(".node-id")?.textContent.trim(),
      tr.children[1]?.textContent.trim()]));
  return Object.fromEntries(rows.filter(([n]) => n));
}

async function source({key}) {
  const table = region(/^Top sources/).getByRole("table");
  const row = table.getByRole("row").filter({
    has: page.getByRole("rowheader", {name: key, exact: true})});
  if (await row.count() === 0) return null;
  const r = row.first();
  const state = (await r.locator("td").nth(4).textContent()).trim();
  const countText = (await r.locator("td").nth(2).textContent()).trim();
  const limitText = (await r.locator("td").nth(3).textContent()).trim();
  const nodes = {};
  for (const t of await r.locator(".contrib-node").allTextContents()) {
    const [n, c] = t.trim().split(/\s+/);
    nodes[n] = Number(c.replace(/\D/g, ""));
  }
  return {state, count: Number(countText.replace(/\D/g, "")), nodes,
    limit: limitText === "none" ? 0 : Number(limitText.replace(/\D/g, ""))};
}

async function signInIfAsked({user, password}) {
  const login = page.getByRole("dialog", {name: "Sign in"});
  // The page opens the sign-in dialog before its first change when it
  // holds no credentials: "signed in as" shows whether it does.
  if (await page.getByText(/^signed in as /).isVisible()) return;
  await login.waitFor({state: "visible"});
  await login.getByLabel("User").fill(user);
  await login.getByLabel("Password").fill(password);
  await login.getByRole("button", {name: "Sign in"}).click();
  await login.waitFor({state: "hidden"});
}

async function policyAdd({key, action = "reject", reason = "", ttl = "3600",
  user, password}) {
  const form = page.getByRole("form", {name: "Add a policy entry"});
  await form.getByLabel("Subject").fill(key);
  await form.getByLabel("Action").selectOption(action);
  await form.getByLabel("Reason").fill(reason);
  await form.getByLabel("Expires").selectOption(String(ttl));
  const wasSignedIn = await page.getByText(/^signed in as /).isVisible();
  await form.getByRole("button", {name: "Add entry"}).click();
  const confirm = page.getByRole("dialog", {name: "Add a policy entry"});
  await confirm.waitFor({state: "visible"});
  const text = (await confirm.textContent()).trim();
  await confirm.getByRole("button", {name: "Add entry"}).click();
  await confirm.waitFor({state: "hidden"});
  if (!wasSignedIn) await signInIfAsked({user, password});
  // Done when the form is cleared (accepted) or shows why not.
  const error = page.locator("#policy-error");
  await page.waitForFunction(() =>
    document.getElementById("policy-key").value === "" ||
    document.getElementById("policy-error").textContent !== "");
  const why = (await error.textContent()).trim();
  if (why) throw new Error(why);
  return text;
}

async function policy() {
  const table = region("Policy overlay").getByRole("table");
  const out = {};
  for (const cells of await rowsOf(table)) {
    if (cells.length >= 2 && cells[0] && !cells[0].startsWith("no entries")) {
      out[cells[0]] = cells[1];
    }
  }
  return out;
}

async function etrn({domain, user, password}) {
  const form = page.getByRole("form", {name: "Run an ETRN"});
  await form.getByLabel("Domain").fill(domain);
  const wasSignedIn = await page.getByText(/^signed in as /).isVisible();
  await form.getByRole("button", {name: "Run ETRN"}).click();
  if (!wasSignedIn) await signInIfAsked({user, password});
  await page.getByRole("table", {name: `ETRN ${domain} results`}).first()
      .waitFor();
  const why = (await page.locator("#etrn-error").textContent()).trim();
  if (why) throw new Error(why);
  return true;
}

async function etrnResults({domain}) {
  const table = page.getByRole("table", {name: `ETRN ${domain} results`})
      .first();
  const out = {};
  for (const cells of await rowsOf(table)) {
    out[cells[0]] = {state: cells[1], messages: cells[2], detail: cells[3]};
  }
  return out;
}

async function screenshot({path}) {
  await page.screenshot({path, fullPage: true});
  return path;
}

const COMMANDS = {
  open, members, source, policy_add: policyAdd, policy, etrn,
  etrn_results: etrnResults, screenshot,
  live: async () => (await page.getByRole("status").textContent()).trim(),
  problems: async () => problems.splice(0),
  close: async () => {
    if (browser) await browser.close();
    browser = null;
    return true;
  },
};

const rl = createInterface({input: process.stdin, terminal: false});
for await (const line of rl) {
  if (!line.trim()) continue;
  let answer;
  try {
    const req = JSON.parse(line);
    const fn = COMMANDS[req.cmd];
    if (!fn) throw new Error(`unknown command ${req.cmd}`);
    if (req.cmd !== "open" && !page) throw new Error("no page: open first");
    answer = {ok: true, result: await fn(req)};
  } catch (e) {
    answer = {ok: false, error: String(e && e.message || e).split("\n")[0]};
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
  if (JSON.parse(line).cmd === "close") break;
}
if (browser) await browser.close();
