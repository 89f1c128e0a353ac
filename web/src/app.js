// The web app's few lines of its own: charts drawn from the data the server puts on each
// <canvas data-chart>, errors shown as the API's problem message, a lost session sent to login.
(function () {
  "use strict";
  var palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

  function drawCharts(root) {
    if (!window.Chart) { return; }
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var old = Chart.getChart(canvas);
      if (old) { old.destroy(); }
      var spec = JSON.parse(canvas.dataset.chart);
      (spec.data.datasets || []).forEach(function (ds, i) {
        var color = ds.color || palette[i % palette.length];
        ds.backgroundColor = ds.backgroundColor || (spec.type === "line" ? color + "33" : color);
        ds.borderColor = ds.borderColor || color;
      });
      spec.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false },
                                   spec.options || {});
      new Chart(canvas, spec);
    });
  }

  function showProblem(text) {
    var box = document.getElementById("alerts");
    if (!box) { return; }
    var p = document.createElement("p");
    p.className = "problem";
    p.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "Dismiss";
    close.addEventListener("click", function () { p.remove(); });
    p.appendChild(close);
    box.replaceChildren(p);
    close.focus();
  }

  function problemText(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      if (body && body.detail) { return (body.title ? body.title + ": " : "") + body.detail; }
    } catch (e) { /* not JSON */ }
    return "HTTP " + xhr.status + " " + (xhr.statusText || "error");
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:load", function (e) { drawCharts(e.detail.elt); });
  document.addEventListener("htmx:beforeCleanupElement", function (e) {
    var chart = window.Chart && e.target.tagName === "CANVAS" && Chart.getChart(e.target);
    if (chart) { chart.destroy(); }
  });
  document.addEventListener("htmx:beforeRequest", function () {
    var box = document.getElementById("alerts");
    if (box) { box.replaceChildren(); }
  });
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr;
    if (xhr.status === 401) {
      window.location.href = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search);
      return;
    }
    showProblem(problemText(xhr));
  });
  document.addEventListener("htmx:sendError", function () {
    showProblem("The service did not answer: is it running?");
  });
})();
