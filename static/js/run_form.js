/* Run form: show the fields that matter for the chosen data set, optimizer and schedule.
   Hidden fields keep their values (and are still sent); a field with an error is always shown. */
(function () {
  "use strict";
  var RULES = {
    csv_file: function (v) { return v.dataset === "csv"; },
    csv_label: function (v) { return v.dataset === "csv"; },
    momentum: function (v) { return v.optimizer === "sgd" || v.optimizer === "rmsprop"; },
    nesterov: function (v) { return v.optimizer === "sgd"; },
    step_size: function (v) { return v.scheduler === "step"; },
    gamma: function (v) { return v.scheduler === "step"; },
    restart_period: function (v) { return v.scheduler === "cosine_restarts"; },
    cycle_mult: function (v) { return v.scheduler === "cosine_restarts"; },
    pct_start: function (v) { return v.scheduler === "onecycle"; }
  };
  var form = document.querySelector("form.run-form");
  if (!form) return;
  function values() {
    return { dataset: form.elements.dataset.value, optimizer: form.elements.optimizer.value,
             scheduler: form.elements.scheduler.value };
  }
  function update() {
    var v = values();
    Object.keys(RULES).forEach(function (name) {
      var el = document.getElementById("field-" + name);
      if (el) el.hidden = !RULES[name](v) && !el.classList.contains("has-error");
    });
  }
  ["dataset", "optimizer", "scheduler"].forEach(function (n) { form.elements[n].addEventListener("change", update); });
  update();
})();
