// crowdnb worker page: submits without leaving the page, retries safely, keeps a heartbeat.
// Works without this file too (a plain form POST); this only makes it nicer and more robust.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("crowd-config").textContent);
  var form = document.getElementById("crowd-form");
  var statusBox = document.getElementById("crowd-status");
  var errorBox = document.getElementById("crowd-errors");
  var button = document.getElementById("crowd-submit");
  var done = false;

  function show(box, text) {
    box.textContent = text;
    box.classList.toggle("crowd-hidden", !text);
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  var idField = form.querySelector("input[name=_crowd_submission_id]");
  if (!idField.value) idField.value = newId();

  function finish(reply) {
    done = true;
    var c = reply.completion || {};
    if (c.kind === "redirect" && c.url) { window.location.assign(c.url); return; }
    if (c.kind === "reload") { window.location.reload(); return; }
    if (c.kind === "form_post" && c.url) {
      var f = document.createElement("form");
      f.method = "post"; f.action = c.url;
      Object.keys(c.fields || {}).forEach(function (k) {
        var i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = c.fields[k]; f.appendChild(i);
      });
      document.body.appendChild(f); f.submit(); return;
    }
    form.querySelector(".crowd-task").disabled = true;
    button.disabled = true;
    button.textContent = "Saved";
    show(errorBox, "");
    show(statusBox, c.message || "Thank you! Your answers are saved.");
    statusBox.classList.add("crowd-ok");
    statusBox.id = "crowd-saved";
  }

  function send(attempt) {
    var body = new FormData(form);
    fetch(form.action, { method: "POST", body: body, headers: { "Accept": "application/json" } })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (reply) {
          if (response.ok) { finish(reply); return; }
          if (response.status >= 500) throw new Error("server error " + response.status);
          button.disabled = false;
          var lines = [reply.message || ("Could not save (" + response.status + ").")];
          Object.keys(reply.errors || {}).forEach(function (k) { lines.push(k + ": " + reply.errors[k]); });
          show(errorBox, lines.join("\n"));
        });
      })
      .catch(function () {
        // Same submission id on every retry: the server stores it once.
        if (attempt < 6) {
          show(statusBox, "Connection problem, retrying…");
          setTimeout(function () { send(attempt + 1); }, Math.min(500 * Math.pow(2, attempt), 8000));
        } else {
          button.disabled = false;
          show(errorBox, "Could not reach the server. Your answers are still on this page: press Submit again.");
        }
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (done || config.mode !== "task") return;
    if (!form.checkValidity()) { form.reportValidity(); return; }
    button.disabled = true;
    show(errorBox, "");
    show(statusBox, "Saving…");
    send(0);
  });

  // Heartbeat: lets the requester see who is working and re-offer abandoned units.
  var messages = {
    expired: "This task has ended; your unit was withdrawn.",
    timeout: "Time is up for this unit; it was offered to another worker.",
    disconnect: "You were disconnected for too long; this unit may have gone to another worker.",
    returned: "You returned this unit."
  };
  function connect(delay) {
    if (config.mode !== "task" || done || !window.WebSocket) return;
    var url = new URL(config.base + "ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", config.token);
    var ws = new WebSocket(url.toString());
    var timer = null;
    ws.onopen = function () {
      delay = 1000;
      ws.send(JSON.stringify({ type: "heartbeat" }));
      timer = setInterval(function () { ws.send(JSON.stringify({ type: "heartbeat" })); }, 5000);
    };
    ws.onmessage = function (event) {
      var msg = JSON.parse(event.data);
      if (msg.type === "status" && messages[msg.status] && !done) show(statusBox, messages[msg.status]);
    };
    ws.onclose = function () {
      clearInterval(timer);
      if (!done) setTimeout(function () { connect(Math.min(delay * 2, 15000)); }, delay);
    };
  }
  connect(1000);
})();
