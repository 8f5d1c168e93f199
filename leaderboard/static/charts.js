// Draw each figure.chart from its inline Vega-Lite spec with the vendored bundle; the static SVG stays if it fails.
document.querySelectorAll("figure.chart").forEach(function (figure) {
  var specNode = figure.querySelector("script.spec");
  if (!specNode || typeof window.vegaEmbed !== "function") { return; }
  var target = document.createElement("div");
  target.className = "vega-target";
  figure.appendChild(target);
  window.vegaEmbed(target, JSON.parse(specNode.textContent), { actions: false, renderer: "svg" })
    .then(function () {
      var img = figure.querySelector("img.fallback");
      if (img) { img.remove(); }
      figure.setAttribute("data-drawn", "true");
    })
    .catch(function (err) { target.remove(); figure.setAttribute("data-error", String(err)); });
});
