// The sign-in form's zone field, filled from the browser's own zone (the server renders
// every time in it). The console works without this script: the field is editable.
(function () {
  var field = document.getElementById("zone");
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (field && zone && field.value === "UTC") { field.value = zone; }
  } catch (e) { /* keep UTC */ }
})();
