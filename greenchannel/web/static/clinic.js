/* The condition picker's search box: filters the chips by Chinese name, English name or code. */
(function () {
  "use strict";
  var search = document.getElementById("condition-search");
  if (!search) return;
  search.hidden = false;
  var chips = document.querySelectorAll(".conditions-picker .chip");
  search.addEventListener("input", function () {
    var q = search.value.trim().toLowerCase();
    for (var i = 0; i < chips.length; i++) {
      var chip = chips[i];
      var hit = !q || chip.getAttribute("data-search").toLowerCase().indexOf(q) >= 0 ||
        chip.querySelector("input").checked;
      chip.hidden = !hit;
    }
  });
  // Enter in the search box must not send the form half-filled.
  search.addEventListener("keydown", function (event) {
    if (event.key === "Enter") event.preventDefault();
  });
})();
