// The admin JSON API (docs/admin-api.md) as the page uses it: GETs,
// state changes with HTTP Basic credentials asked for by the page's own
// login dialog, and the server-sent event stream with its own reconnect.

const BASE = "api/v1/";
const CRED_KEY = "zmnode-admin-auth";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class Api {
  /** `askLogin(message)` resolves to {user, password} or null (cancelled). */
  constructor(askLogin) {
    this.askLogin = askLogin;
    this.auth = sessionStorage.getItem(CRED_KEY);
    this.listeners = new Set();  // called with the user name or null
  }

  get user() {
    if (!this.auth) return null;
    try {
      return atob(this.auth).split(":")[0];
    } catch {
      return null;
    }
  }

  onAuthChange(fn) {
    this.listeners.add(fn);
  }

  setCredentials(user, password) {
    this.auth = user === null ? null : btoa(`${user}:${password}`);
    if (this.auth) sessionStorage.setItem(CRED_KEY, this.auth);
    else sessionStorage.removeItem(CRED_KEY);
    for (const fn of this.listeners) fn(this.user);
  }

  async get(path) {
    return this.request("GET", path);
  }

  /**
   * A POST or DELETE: needs Basic auth. Without credentials, or when the
   * server answers 401, the login dialog asks for them and the request is
   * tried again; cancelling the dialog rejects with ApiError(401).
   */
  async change(method, path, body) {
    let message = "Sign in with a scheduler.auth user to change the fleet.";
    for (let attempt = 0; attempt < 4; attempt++) {
      if (!this.auth) {
        const cred = await this.askLogin(message);
        if (!cred) throw new ApiError(401, "not signed in");
        this.setCredentials(cred.user, cred.password);
      }
      try {
        return await this.request(method, path, body);
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 401) throw e;
        this.setCredentials(null);
        message = `Refused: ${e.message}. Try another user or password.`;
      }
    }
    throw new ApiError(401, "too many attempts");
  }

  async request(method, path, body) {
    const headers = {Accept: "application/json"};
    if (this.auth) headers.Authorization = `Basic ${this.auth}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "same-origin",
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const why = (data && data.error) || text.trim().split("\n")[0] ||
          res.statusText;
      throw new ApiError(res.status, `${res.status} ${why}`);
    }
    return data;
  }
}

/**
 * The event stream (`api/v1/events`): `handlers[name](data)` for each event
 * name, `onState("live"|"connecting"|"down")`. EventSource retries by
 * itself after a dropped connection; when it gives up (an HTTP error, the
 * server gone), this opens a new one with a back-off of 1 s doubling to
 * 15 s, and `onReconnect()` lets the page refresh by plain GETs meanwhile.
 */
export class EventStream {
  constructor(handlers, onState, onReconnect) {
    this.handlers = handlers;
    this.onState = onState;
    this.onReconnect = onReconnect;
    this.backoff = 1000;
    this.timer = null;
    this.source = null;
  }

  start() {
    this.open();
  }

  open() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.onState("connecting");
    const src = new EventSource(BASE + "events");
    this.source = src;
    src.onopen = () => {
      this.backoff = 1000;
      this.onState("live");
    };
    src.onerror = () => {
      if (src !== this.source) return;
      if (src.readyState === EventSource.CLOSED) {
        this.onState("down");
        this.timer = setTimeout(() => this.open(), this.backoff);
        this.backoff = Math.min(this.backoff * 2, 15000);
      } else {
        this.onState("connecting");  // the browser retries by itself
      }
      this.onReconnect();
    };
    for (const [name, fn] of Object.entries(this.handlers)) {
      src.addEventListener(name, (ev) => {
        let data;
        try {
          data = JSON.parse(ev.data);
        } catch {
          return;
        }
        fn(data);
      });
    }
  }
}
