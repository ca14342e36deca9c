// Sortable and filterable tables, printable collapsed sections. No network, no innerHTML.
(function () {
  "use strict";
  function cellKey(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent; }
    var number = parseFloat(raw);
    return { empty: raw === "", number: isNaN(number) || !isFinite(raw) ? null : number, text: raw.toLowerCase() };
  }
  function compare(a, b) {
    if (a.empty || b.empty) { return a.empty === b.empty ? 0 : (a.empty ? 1 : -1); }
    if (a.number !== null && b.number !== null) { return a.number - b.number; }
    return a.text < b.text ? -1 : (a.text > b.text ? 1 : 0);
  }
  function sortTable(table, column, header) {
    var body = table.tBodies[0];
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, index) { return { row: row, index: index, key: cellKey(row.cells[column]) }; });
    keyed.sort(function (x, y) {
      var order = compare(x.key, y.key);
      if (x.key.empty || y.key.empty) { return order || x.index - y.index; }
      return (ascending ? order : -order) || x.index - y.index;
    });
    keyed.forEach(function (entry) { body.appendChild(entry.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  function filterTable(table, query, counter) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var text = row.textContent.toLowerCase();
      var match = words.every(function (word) { return text.indexOf(word) !== -1; });
      row.hidden = !match;
      if (match) { shown += 1; }
    });
    if (counter) { counter.textContent = shown + " of " + table.tBodies[0].rows.length + " rows"; }
  }
  function setUpTable(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.setAttribute("data-sortable", "");
      header.tabIndex = 0;
      header.addEventListener("click", function () { sortTable(table, column, header); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortTable(table, column, header); }
      });
    });
    var wrap = table.closest(".data-table");
    var input = wrap ? wrap.querySelector("input.table-filter") : null;
    var counter = wrap ? wrap.querySelector(".table-count") : null;
    if (input) { input.addEventListener("input", function () { filterTable(table, input.value, counter); }); }
  }
  function openAllForPrint() {
    Array.prototype.forEach.call(document.querySelectorAll("details"), function (element) {
      if (!element.open) { element.setAttribute("data-print-opened", ""); element.open = true; }
    });
  }
  function restoreAfterPrint() {
    Array.prototype.forEach.call(document.querySelectorAll("details[data-print-opened]"), function (element) {
      element.open = false; element.removeAttribute("data-print-opened");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.data"), setUpTable);
    window.addEventListener("beforeprint", openAllForPrint);
    window.addEventListener("afterprint", restoreAfterPrint);
    document.documentElement.setAttribute("data-report-ready", "1");
  });
})();
