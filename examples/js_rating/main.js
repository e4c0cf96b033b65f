// A custom JS task with no build step: rate how well a sentence is written, 1 to 5.
// crowdnb serves this file with its SDK: window.crowd gives the unit's input row (crowd.data),
// the page's mode, any refusal, and crowd.submit(answers), which retries safely and finishes the page.
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), attrs[key]);
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  crowd.onReady(function () {
    var root = document.getElementById("root");
    root.appendChild(el("h1", { text: "How well is this sentence written?" }));
    if (crowd.refusal) {  // no unit for this worker: say why, and offer nothing to fill in
      root.appendChild(el("p", { id: "refusal", class: "refusal", text: crowd.refusal.message }));
      return;
    }
    var preview = crowd.mode === "preview";
    root.appendChild(el("blockquote", { id: "sentence", text: crowd.data.text || "" }));

    var rating = null;
    var stars = el("div", { class: "stars", role: "radiogroup", "aria-label": "rating" });
    [1, 2, 3, 4, 5].forEach(function (n) {
      var button = el("button", {
        type: "button", role: "radio", "aria-checked": "false", id: "star-" + n, text: String(n),
        onclick: function () {
          rating = n;
          Array.prototype.forEach.call(stars.children, function (b, i) { b.setAttribute("aria-checked", String(i + 1 === n)); });
          submit.disabled = preview;
        }
      });
      if (preview) button.disabled = true;
      stars.appendChild(button);
    });
    root.appendChild(stars);

    var comment = el("textarea", { id: "comment", rows: "3", "aria-label": "what could be better (optional)" });
    if (preview) comment.disabled = true;
    root.appendChild(el("label", { for: "comment", text: "What could be better? (optional)" }));
    root.appendChild(comment);

    var status = el("p", { id: "status", role: "status" });
    var submit = el("button", {
      type: "button", id: "submit", text: preview ? "Accept the task to rate" : "Submit",
      onclick: function () {
        submit.disabled = true;
        crowd.submit({ rating: rating, comment: comment.value.trim() }).then(
          function (reply) { status.textContent = reply.completion.message || "Saved."; },
          function (error) { status.textContent = error.message; submit.disabled = false; });
      }
    });
    submit.disabled = true;  // until a rating is chosen
    root.appendChild(submit);
    root.appendChild(status);
  });
})();
