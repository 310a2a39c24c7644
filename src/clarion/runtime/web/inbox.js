/* A recipient's in-app inbox: the list, mark read, and new items live through the SSE stream. */
"use strict";

(() => {
  const { api, el, safeUrl, fromPath, timeElement, refreshTimes, showError, token } = Clarion;
  const PAGE = 30;
  const POLL_MS = 15000;

  const recipient = fromPath("/inbox/");
  const base = "/v1/inbox/" + encodeURIComponent(recipient);

  const nodes = {
    recipient: document.getElementById("recipient"),
    badge: document.getElementById("unread-badge"),
    unreadText: document.getElementById("unread-text"),
    live: document.getElementById("live"),
    markAll: document.getElementById("mark-all"),
    error: document.getElementById("error"),
    items: document.getElementById("items"),
    empty: document.getElementById("empty"),
    more: document.getElementById("more"),
    announcer: document.getElementById("announcer"),
  };

  const shown = new Map(); // item id -> {item, node}
  let unread = 0;
  let cursor = null;
  let stream = null;
  let pollTimer = null;

  nodes.recipient.textContent = recipient;
  document.title = recipient + " · Inbox · Clarion";

  function setUnread(count) {
    unread = Math.max(0, Number(count) || 0);
    nodes.badge.textContent = unread > 99 ? "99+" : String(unread);
    nodes.badge.hidden = unread === 0;
    nodes.unreadText.textContent = unread === 0 ? "No unread notifications" : unread + " unread notification" + (unread === 1 ? "" : "s");
    nodes.bell = nodes.bell || document.getElementById("bell");
    nodes.bell.dataset.unread = String(unread);
    nodes.bell.title = nodes.unreadText.textContent;
    nodes.markAll.disabled = unread === 0;
    document.title = (unread ? "(" + unread + ") " : "") + recipient + " · Inbox · Clarion";
  }

  function setLive(state, text) {
    nodes.live.className = "pill pill-" + state;
    nodes.live.textContent = text;
  }

  function render(item) {
    const titleId = "item-" + item.id + "-title";
    const href = safeUrl(item.link);
    const isUnread = !item.read_at;
    const title = el("h2", { className: "item-title", id: titleId },
      isUnread ? el("span", { className: "visually-hidden" }, "Unread: ") : null,
      href ? el("a", { href, rel: "noopener noreferrer" }, item.title || "(no title)") : (item.title || "(no title)"));
    const meta = el("p", { className: "item-meta" },
      timeElement(item.created_at),
      el("span", { className: "sep", "aria-hidden": "true" }, "·"),
      el("a", { href: "/events/" + encodeURIComponent(item.event_id), className: "event-link", title: "Event " + item.event_id + ": its deliveries" }, item.event_type));
    if (item.link && !href) meta.append(el("span", { className: "sep", "aria-hidden": "true" }, "·"), el("span", { className: "muted" }, item.link));
    const actions = el("div", { className: "item-actions" });
    if (isUnread) {
      const button = el("button", { type: "button", className: "btn btn-small", "aria-label": "Mark read: " + (item.title || "notification") }, "Mark read");
      button.addEventListener("click", () => markOne(item.id));
      actions.append(button);
    } else {
      actions.append(el("span", { className: "read-label" }, "Read"));
    }
    return el("li", { className: "item" + (isUnread ? " item-unread" : ""), dataset: { id: String(item.id) }, tabindex: "-1", "aria-labelledby": titleId },
      el("span", { className: "dot", "aria-hidden": "true" }),
      el("div", { className: "item-main" },
        title,
        item.body ? el("p", { className: "item-body" }, item.body) : null,
        meta),
      actions);
  }

  // Keep the list sorted newest first (ids grow with time); replace an item already shown.
  function put(item, fresh) {
    const known = shown.get(item.id);
    const node = render(item);
    if (known) {
      known.node.replaceWith(node);
    } else {
      let before = null;
      for (const child of nodes.items.children) {
        if (Number(child.dataset.id) < item.id) { before = child; break; }
      }
      nodes.items.insertBefore(node, before);
      if (fresh) {
        node.classList.add("item-new");
        window.setTimeout(() => node.classList.remove("item-new"), 2500);
        nodes.announcer.textContent = "New notification: " + (item.title || item.event_type);
      }
    }
    shown.set(item.id, { item, node });
    nodes.empty.hidden = shown.size > 0;
  }

  function newest() {
    let top = 0;
    for (const id of shown.keys()) top = Math.max(top, id);
    return top;
  }

  async function loadPage() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (cursor !== null) query.set("cursor", String(cursor));
    const answer = await api(base + "?" + query);
    for (const item of answer.items) put(item, false);
    cursor = answer.next_cursor;
    nodes.more.hidden = cursor === null;
    setUnread(answer.unread);
  }

  async function markOne(id) {
    try {
      const answer = await api(base + "/read", { json: { ids: [id] } });
      const known = shown.get(id);
      if (known) {
        put({ ...known.item, read_at: known.item.read_at || new Date().toISOString() }, false);
        shown.get(id).node.focus();
      }
      setUnread(answer.unread);
      nodes.announcer.textContent = "Marked read.";
    } catch (error) {
      showError(nodes.error, "Could not mark it read: " + error.message);
    }
  }

  async function markAll() {
    try {
      const answer = await api(base + "/read", { json: { all: true } });
      const now = new Date().toISOString();
      for (const { item } of [...shown.values()]) {
        if (!item.read_at) put({ ...item, read_at: now }, false);
      }
      setUnread(answer.unread);
      nodes.announcer.textContent = "All notifications marked read.";
    } catch (error) {
      showError(nodes.error, "Could not mark all read: " + error.message);
    }
  }

  // With a token the stream cannot be used (EventSource sends no headers): poll instead.
  async function poll() {
    try {
      const answer = await api(base + "?" + new URLSearchParams({ limit: String(PAGE) }));
      const top = newest();
      for (const item of answer.items.slice().reverse()) put(item, item.id > top);
      setUnread(answer.unread);
      setLive("poll", "Updates every " + POLL_MS / 1000 + " s");
    } catch (error) {
      setLive("off", "Offline");
    }
  }

  function startPolling() {
    if (pollTimer === null) pollTimer = window.setInterval(poll, POLL_MS);
  }

  function connect() {
    if (token || typeof window.EventSource !== "function") {
      setLive("poll", "Updates every " + POLL_MS / 1000 + " s");
      startPolling();
      return;
    }
    // Start after the newest item shown, so nothing between the first page and the stream is lost;
    // on reconnection the browser sends Last-Event-ID itself.
    stream = new EventSource(base + "/stream?after=" + newest());
    stream.addEventListener("open", () => setLive("on", "Live"));
    stream.addEventListener("item", (message) => put(JSON.parse(message.data), true));
    stream.addEventListener("unread", (message) => setUnread(JSON.parse(message.data).unread));
    stream.addEventListener("error", () => {
      if (stream.readyState === EventSource.CLOSED) {
        setLive("poll", "Updates every " + POLL_MS / 1000 + " s");
        startPolling();
      } else {
        setLive("wait", "Reconnecting…");
      }
    });
  }

  nodes.markAll.addEventListener("click", markAll);
  nodes.more.addEventListener("click", async () => {
    nodes.more.disabled = true;
    try {
      await loadPage();
    } catch (error) {
      showError(nodes.error, "Could not load older notifications: " + error.message);
    } finally {
      nodes.more.disabled = false;
    }
  });
  window.addEventListener("pagehide", () => { if (stream) stream.close(); });
  window.setInterval(() => refreshTimes(nodes.items), 30000);

  (async () => {
    try {
      await loadPage();
      nodes.empty.hidden = shown.size > 0;
      connect();
    } catch (error) {
      setLive("off", "Offline");
      nodes.markAll.disabled = true;
      showError(nodes.error, error.status === 404
        ? "There is no in-app inbox for “" + recipient + "”."
        : "Could not load the inbox: " + error.message);
    }
  })();
})();
