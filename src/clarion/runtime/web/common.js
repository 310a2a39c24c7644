/* Shared by the pages: the JSON API with an optional bearer token, safe DOM building, times.
   Text from the API only ever goes through textContent or attributes, never innerHTML. */
"use strict";

const Clarion = (() => {
  const KEY = "clarion.token";

  // `?token=` in the page's URL: kept for this tab (sessionStorage), removed from the address bar.
  function readToken() {
    const params = new URLSearchParams(window.location.search);
    const given = params.get("token");
    if (given) {
      try {
        window.sessionStorage.setItem(KEY, given);
      } catch (_) { /* storage off: the token lasts for this page only */ }
      params.delete("token");
      const rest = params.toString();
      window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : "") + window.location.hash);
      return given;
    }
    try {
      return window.sessionStorage.getItem(KEY);
    } catch (_) {
      return null;
    }
  }

  const token = readToken();

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("Accept", "application/json");
    if (token) headers.set("Authorization", "Bearer " + token);
    let body;
    if (options.json !== undefined) {
      headers.set("Content-Type", "application/json");
      body = JSON.stringify(options.json);
    }
    const response = await fetch(path, {
      method: options.method || (body === undefined ? "GET" : "POST"),
      headers,
      body,
      credentials: "same-origin",
      cache: "no-store",
    });
    let answer = null;
    try {
      answer = await response.json();
    } catch (_) { /* not JSON: reported by status below */ }
    if (!response.ok) {
      const error = answer && answer.error ? answer.error : {};
      throw new ApiError(response.status, error.code || "http_error", error.message || "HTTP " + response.status);
    }
    return answer;
  }

  // el("a", {href: "/x", className: "y"}, "text", otherNode): children are text or nodes.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "className") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "hidden") node.hidden = true;
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Only http(s) links are followed; anything else (javascript:, data:) is shown as text.
  function safeUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      const url = new URL(value, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_) {
      return null;
    }
  }

  // The last path segment after `prefix`, decoded: /inbox/owner -> "owner".
  function fromPath(prefix) {
    const path = window.location.pathname;
    if (!path.startsWith(prefix)) return "";
    try {
      return decodeURIComponent(path.slice(prefix.length));
    } catch (_) {
      return path.slice(prefix.length);
    }
  }

  const relative = typeof Intl.RelativeTimeFormat === "function"
    ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "long" })
    : null;
  const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function whenAbsolute(iso) {
    const moment = new Date(iso);
    return Number.isNaN(moment.getTime()) ? String(iso) : absolute.format(moment);
  }

  function whenRelative(iso, now = Date.now()) {
    const moment = new Date(iso);
    if (Number.isNaN(moment.getTime())) return String(iso);
    const seconds = Math.round((moment.getTime() - now) / 1000);
    if (!relative || Math.abs(seconds) >= 7 * 86400) return absolute.format(moment);
    if (Math.abs(seconds) < 45) return "just now";
    const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
    }
    return "just now";
  }

  function timeElement(iso) {
    return el("time", { datetime: iso, title: whenAbsolute(iso) }, whenRelative(iso));
  }

  // Refresh every <time> made by timeElement (relative times age).
  function refreshTimes(root = document) {
    for (const node of root.querySelectorAll("time[datetime]")) {
      node.textContent = whenRelative(node.getAttribute("datetime"));
    }
  }

  function showError(node, message) {
    node.textContent = message;
    node.hidden = false;
  }

  return { token, api, ApiError, el, safeUrl, fromPath, whenAbsolute, whenRelative, timeElement, refreshTimes, showError };
})();
