/* The index: each recipient with an in-app inbox, with its unread count. */
"use strict";

(() => {
  const { api, el } = Clarion;
  const list = document.getElementById("inboxes");
  const status = document.getElementById("inboxes-status");

  async function load() {
    try {
      const answer = await api("/v1/inboxes");
      const inboxes = answer.inboxes || [];
      list.replaceChildren(...inboxes.map((inbox) => {
        const unread = inbox.unread > 0
          ? el("span", { className: "badge badge-inline" }, String(inbox.unread), el("span", { className: "visually-hidden" }, " unread"))
          : el("span", { className: "muted small" }, "no unread");
        return el("li", {},
          el("a", { href: "/inbox/" + encodeURIComponent(inbox.recipient), className: "link-row" },
            el("span", { className: "link-row-name" }, inbox.recipient),
            unread));
      }));
      status.textContent = inboxes.length
        ? inboxes.length + (inboxes.length === 1 ? " recipient has" : " recipients have") + " an in-app inbox."
        : "No recipient has an in-app inbox in this configuration.";
    } catch (error) {
      status.textContent = "Could not load the inboxes: " + error.message;
      status.classList.add("alert");
    }
  }

  load();
})();
