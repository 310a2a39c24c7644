/* clarion docs: the filter box of the matrix. Without this script every row and column shows. */
(function () {
  "use strict";
  var form = document.getElementById("filter-form");
  var table = document.getElementById("matrix-table");
  if (!form || !table) return;
  var input = document.getElementById("filter");
  var status = document.getElementById("filter-status");
  var empty = document.getElementById("filter-empty");
  var rows = Array.prototype.slice.call(table.querySelectorAll("tr.event"));
  var heads = Array.prototype.slice.call(table.querySelectorAll("th.target"));
  var groups = table.querySelectorAll("th.recipient");
  var bodies = table.querySelectorAll("tbody.category-group");
  var cells = table.querySelectorAll("td[data-col], th.target");
  var GETS = ["on", "route", "maybe"];

  function apply() {
    var q = input.value.trim().toLowerCase();
    var matches = function (el) { return el.getAttribute("data-search").indexOf(q) !== -1; };
    var shownRows = q ? rows.filter(matches) : rows;
    var keep = null; // column ids to keep; null: all
    if (q && shownRows.length === 0) {
      var hits = heads.filter(matches);
      keep = {};
      hits.forEach(function (th) { keep[th.getAttribute("data-col")] = true; });
      shownRows = rows.filter(function (tr) {
        return Array.prototype.some.call(tr.querySelectorAll("td"), function (td) {
          return keep[td.getAttribute("data-col")] && GETS.indexOf(td.getAttribute("data-state")) !== -1;
        });
      });
    }
    rows.forEach(function (tr) { tr.hidden = shownRows.indexOf(tr) === -1; });
    Array.prototype.forEach.call(cells, function (el) {
      el.hidden = keep !== null && !keep[el.getAttribute("data-col")];
    });
    Array.prototype.forEach.call(groups, function (th) {
      var who = th.getAttribute("data-recipient");
      var n = heads.filter(function (h) {
        return !h.hidden && h.getAttribute("data-recipient") === who;
      }).length;
      th.hidden = n === 0;
      if (n) th.colSpan = n;
    });
    Array.prototype.forEach.call(bodies, function (tbody) {
      tbody.hidden = tbody.querySelectorAll("tr.event:not([hidden])").length === 0;
    });
    empty.hidden = shownRows.length !== 0;
    table.hidden = shownRows.length === 0;
    status.textContent = q ? shownRows.length + " of " + rows.length + " events" : "";
  }

  form.hidden = false;
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  input.addEventListener("input", apply);
  if (input.value) apply();
})();
