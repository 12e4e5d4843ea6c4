// The sign-in form's zone field, filled from the browser's own zone (the server renders
// every time in it). The console works without this script: the field is editable.
(function () {
  var field = document.getElementById("zone");
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (field && zone && field.value === "UTC") { field.value = zone; }
  } catch (e) { /* keep UTC */ }
})();

// "/" jumps to the search box (as on most web apps), unless one is typing already.
(function () {
  document.addEventListener("keydown", function (e) {
    var t = e.target, box = document.getElementById("q");
    if (e.key !== "/" || !box || e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) { return; }
    e.preventDefault();
    box.focus();
  });
})();
