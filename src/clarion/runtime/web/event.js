/* An event's deliveries, and for each skipped one why it was not sent, in plain words. */
"use strict";

(() => {
  const { api, el, fromPath, timeElement, whenAbsolute, showError } = Clarion;

  // The fixed vocabulary of skip reasons (docs/operations.md, "Why was this not sent?").
  const REASONS = {
    event_disabled: "This address or device is set not to receive this event: its toggle for the event is off, or it has Disable All.",
    device_disabled: "The push device is switched off (enabled: false), so nothing is sent to it.",
    no_consent: "The customer has not agreed to receive messages on this channel.",
    message_disabled: "This customer message is switched off (enabled: false in customer_messages).",
    condition_false: "The route's or flow's condition did not hold for this event (its when was false, or its unless true).",
    late: "The moment to send had already passed when it was planned, and the flow says to skip late sends.",
    canceled: "The pending flow run was canceled by a later event with the same key, so this step never ran.",
    replaced: "The pending flow run was replaced by a newer run with the same key.",
    no_address: "The customer has no address for this channel (or the event carried no contact).",
    invalid_address: "The address could not be understood: a malformed phone number or email address.",
    duplicate_contact: "The contact's phone or email belongs to another contact, and contacts must be unique.",
    read: "Someone already read the in-app notification this flow sent earlier, so the escalation was not needed.",
    throttled: "Too many messages of this kind for the same key in this window: the throttle's limit was reached.",
    digested: "Collected into a digest: this address gets one message listing its events, at the digest's time.",
  };

  const STATUS = {
    sent: "Sent",
    planned: "Planned",
    scheduled: "Scheduled (quiet hours)",
    sending: "Sending",
    failed: "Failed, will retry",
    dead: "Failed",
    skipped: "Not sent",
  };

  const eventId = fromPath("/events/");
  const nodes = {
    title: document.getElementById("event-title"),
    status: document.getElementById("status"),
    error: document.getElementById("error"),
    content: document.getElementById("content"),
    facts: document.getElementById("facts"),
    summary: document.getElementById("summary"),
    skipped: document.getElementById("skipped"),
    skippedNone: document.getElementById("skipped-none"),
    others: document.getElementById("others"),
    othersNone: document.getElementById("others-none"),
    json: document.getElementById("event-json"),
  };

  nodes.title.textContent = eventId || "(no event id)";
  document.title = eventId + " · Event · Clarion";

  function fact(term, ...value) {
    return [el("dt", {}, term), el("dd", {}, ...value)];
  }

  function statusBadge(status) {
    return el("span", { className: "status status-" + status }, STATUS[status] || status);
  }

  function whyNotSent(delivery) {
    const code = delivery.reason || "unknown";
    const sentence = REASONS[code] || "Skipped for a reason this page does not describe.";
    const box = el("div", { className: "why" },
      el("p", { className: "why-label" }, "Why not sent"),
      el("p", { className: "why-sentence" }, sentence),
      el("p", { className: "why-code" }, "Reason code ", el("code", {}, code)));
    if (delivery.detail) box.append(el("p", { className: "why-detail" }, "Detail: ", el("code", {}, delivery.detail)));
    return box;
  }

  function card(delivery) {
    const lines = el("dl", { className: "delivery-facts" });
    const add = (term, ...value) => lines.append(el("div", {}, ...fact(term, ...value)));
    if (delivery.to) add("To", delivery.to);
    if (delivery.template) add("Template", delivery.template);
    if (delivery.source) add("Source", delivery.source);
    if (delivery.sent_at) add("Sent", timeElement(delivery.sent_at));
    else if (delivery.due_at && delivery.status !== "skipped") add("Due", timeElement(delivery.due_at));
    if (delivery.attempts) add("Attempts", String(delivery.attempts));
    if (delivery.last_error) add("Last error", el("code", {}, delivery.last_error));
    const item = el("li", { className: "delivery delivery-" + delivery.status },
      el("div", { className: "delivery-head" },
        el("h3", { className: "delivery-title" },
          delivery.recipient || "customer",
          el("span", { className: "channel" }, delivery.channel)),
        statusBadge(delivery.status)),
      lines);
    if (delivery.status === "skipped") item.append(whyNotSent(delivery));
    return item;
  }

  function show(record) {
    nodes.title.textContent = record.type;
    document.title = record.type + " " + record.id + " · Event · Clarion";
    nodes.facts.replaceChildren(
      ...fact("Event id", el("code", {}, record.id)),
      ...fact("Received", el("time", { datetime: record.received_at }, whenAbsolute(record.received_at))),
      ...fact("Table", el("code", { title: record.table_digest }, String(record.table_digest || "").replace(/^sha256:/, "").slice(0, 12))));
    const deliveries = record.deliveries || [];
    const counts = {};
    for (const delivery of deliveries) counts[delivery.status] = (counts[delivery.status] || 0) + 1;
    nodes.summary.replaceChildren(
      el("li", { className: "summary-total" }, el("strong", {}, String(deliveries.length)), " deliveries"),
      ...Object.keys(counts).sort().map((status) =>
        el("li", {}, statusBadge(status), " ", el("strong", {}, String(counts[status])))));
    const skipped = deliveries.filter((d) => d.status === "skipped");
    const others = deliveries.filter((d) => d.status !== "skipped");
    nodes.skipped.replaceChildren(...skipped.map(card));
    nodes.others.replaceChildren(...others.map(card));
    nodes.skippedNone.hidden = skipped.length > 0;
    nodes.othersNone.hidden = others.length > 0;
    nodes.json.textContent = JSON.stringify(record.event, null, 2);
    nodes.status.textContent = deliveries.length + " deliveries, " + skipped.length + " not sent.";
    nodes.content.hidden = false;
  }

  (async () => {
    if (!eventId) {
      nodes.status.textContent = "";
      showError(nodes.error, "No event id in the address.");
      return;
    }
    try {
      show(await api("/v1/events/" + encodeURIComponent(eventId)));
    } catch (error) {
      nodes.status.textContent = "";
      showError(nodes.error, error.status === 404
        ? "No event “" + eventId + "”. It was never accepted: its producer got a 4xx error, or never sent it."
        : "Could not load the event: " + error.message);
    }
  })();
})();
