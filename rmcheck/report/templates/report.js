(function () {
  "use strict";
  var filter = document.getElementById("filter");
  var model = document.getElementById("model-filter");
  var failed = document.getElementById("failed-only");
  var count = document.getElementById("shown-count");

  function matches(el, query, name, failing) {
    return (!query || el.textContent.toLowerCase().indexOf(query) >= 0) &&
      (!name || !el.hasAttribute("data-model") || el.getAttribute("data-model") === name) &&
      (!failing || el.getAttribute("data-failed") === "1");
  }

  function apply() {
    var query = filter.value.trim().toLowerCase(), name = model.value, failing = failed.checked;
    var rows = document.querySelectorAll("[data-row]"), shown = 0;
    Array.prototype.forEach.call(rows, function (el) {
      var ok = matches(el, query, name, failing);
      el.hidden = !ok;
      if (ok) { shown += 1; }
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-col]"), function (el) {
      el.hidden = !!name && el.getAttribute("data-col") !== name;
    });
    count.textContent = shown + " of " + rows.length + " rows shown";
  }

  function cellValue(row, index) {
    var cell = row.children[index];
    if (!cell) { return ""; }
    var value = cell.getAttribute("data-value");
    return value !== null && value !== "" && !isNaN(Number(value)) ? Number(value) : cell.textContent.trim().toLowerCase();
  }

  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0], index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var descending = th.getAttribute("aria-sort") !== "descending";
    Array.prototype.forEach.call(th.parentNode.children, function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      var order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable thead th"), function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  var params = new URLSearchParams(window.location.search);
  filter.value = params.get("q") || "";
  if (params.get("model")) { model.value = params.get("model"); }
  failed.checked = params.get("failed") === "1";
  [filter, model, failed].forEach(function (el) { el.addEventListener("input", apply); el.addEventListener("change", apply); });
  apply();
  document.documentElement.setAttribute("data-ready", "1");
}());
