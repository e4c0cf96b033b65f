// crowdnb review app: optional niceties; every action also works without JavaScript.
(function () {
  "use strict";
  var form = document.getElementById("rv-review");
  if (!form) return;
  var boxes = function (root) { return root.querySelectorAll("input[name=unit_ids]"); };
  var count = document.getElementById("rv-selected");
  var update = function () {
    var n = form.querySelectorAll("input[name=unit_ids]:checked").length;
    if (count) count.textContent = String(n);
  };
  // "select every unit of this worker" boxes are hidden until JavaScript can make them work
  form.querySelectorAll(".rv-select-group").forEach(function (group) {
    group.hidden = false;
    group.addEventListener("change", function () {
      var section = group.closest(".rv-worker");
      boxes(section).forEach(function (box) { box.checked = group.checked; });
      update();
    });
  });
  form.addEventListener("change", function (event) {
    if (event.target.name === "unit_ids") update();
  });
  update();
})();
