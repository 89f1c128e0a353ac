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

// Labelling samples by keyboard (the data scientist's grid, form[data-labeller]): arrows move
// between samples, space selects, "a" selects the page, a class's key labels the selected samples
// (or the one in focus), "u" unlabels. After the grid comes back, the sample after the ones
// labelled has the focus, so labelling a run of samples is one key each.
(function () {
  "use strict";
  var next = null;

  function boxes(form) { return Array.prototype.slice.call(form.querySelectorAll("input[name=samples]")); }

  function columns(list) {
    if (!list.length) { return 1; }
    var top = list[0].closest("li").offsetTop, n = 0;
    list.forEach(function (b) { if (b.closest("li").offsetTop === top) { n += 1; } });
    return Math.max(n, 1);
  }

  function counted(form) {
    var out = form.querySelector("[data-selected-count]");
    var n = boxes(form).filter(function (b) { return b.checked; }).length;
    if (out) { out.dataset.total = out.dataset.total || out.textContent; }
    if (out) { out.textContent = n ? n + " selected" : out.dataset.total; }
  }

  document.addEventListener("change", function (e) {
    var form = e.target.closest && e.target.closest("form[data-labeller]");
    if (form) { counted(form); }
  });

  document.addEventListener("keydown", function (e) {
    var form = e.target.closest && e.target.closest("form[data-labeller]");
    if (!form || e.ctrlKey || e.metaKey || e.altKey || e.target.name !== "samples") { return; }
    var list = boxes(form), at = list.indexOf(e.target), move = 0;
    if (e.key === "ArrowRight") { move = 1; }
    else if (e.key === "ArrowLeft") { move = -1; }
    else if (e.key === "ArrowDown") { move = columns(list); }
    else if (e.key === "ArrowUp") { move = -columns(list); }
    if (move) {
      var to = list[Math.min(Math.max(at + move, 0), list.length - 1)];
      if (to) { to.focus(); }
      e.preventDefault();
      return;
    }
    if (e.key === "a") {
      var all = !list.every(function (b) { return b.checked; });
      list.forEach(function (b) { b.checked = all; });
      counted(form);
      e.preventDefault();
      return;
    }
    var button = form.querySelector('button[data-key="' + (e.key === "U" ? "u" : e.key) + '"]');
    if (!button) { return; }
    if (!list.some(function (b) { return b.checked; })) { e.target.checked = true; }
    var chosen = list.filter(function (b) { return b.checked; });
    var last = list.indexOf(chosen[chosen.length - 1]);
    var after = list.slice(last + 1).filter(function (b) { return !b.checked; })[0];
    next = { id: after ? after.value : null, index: at };
    e.preventDefault();
    button.click();
  });

  // htmx:load: the new grid (the request's own form was swapped out, so its events go nowhere).
  document.addEventListener("htmx:load", function (e) {
    var elt = e.detail && e.detail.elt;
    var form = next && elt && elt.matches && elt.matches("form[data-labeller]") ? elt : null;
    if (!form) { return; }
    var list = boxes(form);
    var to = list.filter(function (b) { return b.value === next.id; })[0] ||
             list[Math.min(next.index, list.length - 1)];
    next = null;
    if (to) { to.focus(); }
  });
})();
