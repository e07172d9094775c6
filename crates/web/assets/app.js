// Confirmation of destructive actions, and the dialogs (restore a snapshot) opened by buttons.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("click", function (event) {
  var opener = event.target.closest("[data-open]");
  if (opener) {
    var dialog = document.getElementById(opener.getAttribute("data-open"));
    if (dialog) {
      dialog.showModal();
    }
  }
  var closer = event.target.closest("[data-close]");
  if (closer) {
    closer.closest("dialog").close();
  }
});
