// The fleet's policy overlay (GET policy / the `policy` event): entries
// with reason, author node and expiry; added and removed from here after a
// confirmation (POST policy, DELETE policy?key=K, with Basic auth). The
// agent replicates each change to every node.

import {confirmAction} from "./dialogs.js";
import {duration, el, expiresIn, fill, nowUnix, utc} from "./util.js";

export class PolicyView {
  constructor(api, onChanged) {
    this.api = api;
    this.onChanged = onChanged;
    this.form = document.getElementById("policy-form");
    this.error = document.getElementById("policy-error");
    this.last = {entries: []};
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.add();
    });
    // rate-class entries carry their limits ("N" or "N,M" per window).
    const action = document.getElementById("policy-action");
    const showClass = () => {
      const on = action.value === "rate-class";
      for (const n of this.form.querySelectorAll(
          "#policy-class, label[for=policy-class]")) {
        n.hidden = !on;
      }
    };
    action.addEventListener("change", showClass);
    showClass();
  }

  /** Puts `subject` in the form (from a source's Block… button). */
  prefill(subject) {
    document.getElementById("policy-key").value = subject;
    document.getElementById("policy-action").value = "reject";
    const reason = document.getElementById("policy-reason");
    if (!reason.value) reason.value = "blocked from the dashboard";
    this.form.scrollIntoView({block: "nearest"});
    document.getElementById("policy-reason").focus();
  }

  async add() {
    const key = document.getElementById("policy-key").value.trim();
    const action = document.getElementById("policy-action").value;
    const reason = document.getElementById("policy-reason").value.trim();
    const ttl = Number(document.getElementById("policy-ttl").value);
    const rateClass = document.getElementById("policy-class").value.trim();
    if (!key) return;
    const until = ttl ? `for ${duration(ttl)}` : "until removed";
    const ok = await confirmAction("Add a policy entry",
        `${action.toUpperCase()}${action === "rate-class" ? ` ${rateClass}` : ""}` +
        ` ${key} on every node of the fleet ${until}` +
        (reason ? ` (reason: ${reason})` : "") + "?", "Add entry");
    if (!ok) return;
    this.error.textContent = "";
    try {
      const body = {key, action, reason, ttl_s: ttl};
      if (action === "rate-class") body.class = rateClass;
      await this.api.change("POST", "policy", body);
      document.getElementById("policy-key").value = "";
      document.getElementById("policy-reason").value = "";
      this.onChanged();
    } catch (e) {
      this.error.textContent = `Not added: ${e.message}`;
    }
  }

  async remove(entry) {
    const ok = await confirmAction("Remove a policy entry",
        `Remove ${entry.action.toUpperCase()} ${entry.key} from every node ` +
        "of the fleet?", "Remove");
    if (!ok) return;
    this.error.textContent = "";
    try {
      await this.api.change("DELETE",
          `policy?key=${encodeURIComponent(entry.key)}`);
      this.onChanged();
    } catch (e) {
      this.error.textContent = `Not removed: ${e.message}`;
    }
  }

  update(data) {
    this.last = data;
    this.draw();
  }

  draw() {
    const now = nowUnix();
    const entries = [...(this.last.entries || [])].sort((a, b) =>
        (b.created_unix || 0) - (a.created_unix || 0));
    const body = document.getElementById("policy-body");
    if (!entries.length) {
      fill(body, el("tr", {}, el("td", {colspan: 7, class: "empty"},
          "no entries: only the static smtp-policy applies")));
    } else {
      fill(body, entries.map((e) => el("tr", {dataset: {key: e.key}},
          el("th", {scope: "row", class: "mono"}, e.key),
          el("td", {}, el("span", {class: `badge act-${e.action}`}, e.action),
              e.class ? el("span", {class: "mono"}, ` ${e.class}`) : null),
          el("td", {class: "reason"}, e.reason || "–"),
          el("td", {}, e.author_node || "–"),
          el("td", {title: utc(e.created_unix)},
              e.created_unix ? `${duration(now - e.created_unix)} ago` : "–"),
          el("td", {title: utc(e.expires_unix)},
              expiresIn(e.expires_unix, now)),
          el("td", {}, el("button", {type: "button", class: "small danger",
            "aria-label": `Remove ${e.key}`,
            onclick: () => this.remove(e)}, "Remove")))));
    }
    document.getElementById("policy-summary").textContent =
        `${entries.length} ${entries.length === 1 ? "entry" : "entries"}`;
  }
}
