// Click a header of a table.sortable to sort by that column; numbers sort by data-value.
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var numeric = th.dataset.sort === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var vx = x.dataset.value !== undefined ? x.dataset.value : x.textContent.trim();
        var vy = y.dataset.value !== undefined ? y.dataset.value : y.textContent.trim();
        if (numeric) {
          var nx = vx === "" ? Infinity : parseFloat(vx), ny = vy === "" ? Infinity : parseFloat(vy);
          return asc ? nx - ny : ny - nx;
        }
        return asc ? vx.localeCompare(vy) : vy.localeCompare(vx);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
