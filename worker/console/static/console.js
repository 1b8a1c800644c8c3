/* siyu console: the little the pages need beyond htmx. Everything works without it. */
"use strict";
// A form with data-confirm asks first (cancelling a campaign cannot be undone).
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);
