// crowdnb's page script and SDK. Forms and custom JS tasks share one submit path: one client-made
// submission id per page (the server stores it once), retries with backoff, per-field errors, and the
// provider's completion (message, the worker's next unit, redirect, form post, reload). It also keeps the
// heartbeat. In a notebook's dry run ("dry_run": the page served by the task's preview) Submit shows what
// would be stored, or what is wrong, and stores nothing; the page tells its frame how tall it is.
// Task pages work without it too (a plain form POST); this makes them nicer and more robust.
//
// window.crowd (for JS tasks, usable on every page):
//   crowd.data       the unit's input row          crowd.mode     "task" | "preview" | "onboarding" | "dry_run"
//   crowd.refusal    null, or {reason, message} when the worker cannot get a unit (mode is then "preview")
//   crowd.submit(answers, files?) → Promise of the server's reply; files: {field: File | File[] | FileList}
//   crowd.call(name, args)         → Promise of what the task's procedure `name` returned (an object); it
//                                    rejects with an Error whose message the worker can read
//   crowd.onReady(callback)        runs callback(crowd) once the page is parsed
//   crowd.chat (a task several workers share): .say(text) → Promise (resolved when the room has it),
//     .on(type, callback) for "lobby", "start" (also after a reconnect, with the whole history), "message",
//     "event", "ended", "released"; .role, .roles, .turn (whose turn, or null), .state, .messages
//
// Declarative calls: <button type="button" data-crowd-call="guess" data-crowd-args="#sentence"
//   data-crowd-result="#guess"> calls `guess` with the named inputs inside #sentence (or the element
//   itself; several selectors separated by commas; or a JSON object) and writes the result into #guess
//   (its `text`, its only value, or the JSON). The button fires "crowd:result" / "crowd:error" events.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("crowd-config").textContent);
  var here = window.location.href; // the page as loaded: the worker's next unit is this address again
  var DRY_RUN = "Dry run: try the page as a worker would. Submit shows what would be stored, and stores nothing.";
  var NEXT_UNIT_MS = 1500; // long enough to read "Saved", short enough not to wait for
  var root = base(); // resolved once: a bundle may change the URL
  var submissionId = config.submissionId || newId();
  var saving = null; // the pending submission's promise: a second submit joins it
  var saved = null; // the reply once stored: later submits resolve with it and send nothing
  var ready = [];
  var form = null;

  // A page shown from a string (an iframe's srcdoc) is at about:srcdoc, which nothing resolves against: its
  // links go where its document's base says (the notebook's address), or nowhere (a preview sends nothing)
  function base() {
    var tries = [window.location.href, document.baseURI];
    for (var i = 0; i < tries.length; i++) {
      try { return new URL(config.base || "", tries[i]); } catch (e) { /* the next */ }
    }
    return null;
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function el(id) { return document.getElementById(id); }

  function refused(reason, message, status, errors) {
    var error = new Error(message);
    error.reason = reason; error.status = status || 0; error.errors = errors || {};
    return error;
  }

  // --- the one submit path -------------------------------------------------------------------
  function post(body, attempt, resolve, reject) {
    var headers = { "Accept": "application/json" };
    if (typeof body === "string") headers["Content-Type"] = "application/json";
    fetch(new URL("submit", root).toString(), { method: "POST", body: body, headers: headers })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (reply) {
          if (response.ok) { resolve(reply); return; }
          if (response.status >= 500) throw new Error("server error " + response.status);
          reject(refused(reply.reason || "error", reply.message || ("Could not save (" + response.status + ")."),
            response.status, reply.errors));
        });
      })
      .catch(function () {
        // the same submission id on every retry: the server stores it once
        if (attempt < 6) {
          status("Connection problem, retrying…");
          setTimeout(function () { post(body, attempt + 1, resolve, reject); }, Math.min(500 * Math.pow(2, attempt), 8000));
        } else {
          reject(refused("network", "Could not reach the server. Your answers are still on this page: submit again."));
        }
      });
  }

  function send(body) {
    if (saved) return Promise.resolve(saved);
    if (saving) return saving;
    if (config.mode !== "task" && config.mode !== "onboarding" && config.mode !== "dry_run") {
      var text = config.refusal ? config.refusal.message : "This is a preview: accept the task to submit.";
      return Promise.reject(refused(config.refusal ? config.refusal.reason : "preview", text));
    }
    status("Saving…");
    saving = new Promise(function (resolve, reject) { post(body(), 0, resolve, reject); }).then(
      function (reply) {
        if (reply.status === "dry_run") { saving = null; tried(reply); return reply; } // nothing stored: try again at will
        saved = reply; finish(reply); return reply;
      },
      function (error) { saving = null; failed(error); throw error; });
    return saving;
  }

  function feedbackText() {
    var box = el("crowd-feedback");
    return box ? box.value : null;
  }

  function submit(answers, files) {
    if (answers === null || typeof answers !== "object" || Array.isArray(answers)) {
      return Promise.reject(refused("bad_submission", "crowd.submit takes an object of answers"));
    }
    var list = fileList(files || {});
    var problems = checkFiles(list);
    if (problems) return Promise.reject(refused("invalid", "Some files cannot be sent.", 0, problems));
    return send(function () {
      var feedback = feedbackText();
      if (!list.length) {
        var meta = feedback === null ? {} : { feedback: feedback };
        return JSON.stringify({ token: config.token, submission_id: submissionId, answers: answers, meta: meta });
      }
      var data = new FormData();
      data.append("_crowd_token", config.token);
      data.append("_crowd_submission_id", submissionId);
      data.append("_crowd_answers", JSON.stringify(answers));
      if (feedback !== null) data.append("_crowd_feedback", feedback);
      list.forEach(function (item) { data.append(item.field, item.file, item.file.name); });
      return data;
    });
  }

  function fileList(files) {
    var list = [];
    Object.keys(files).forEach(function (field) {
      var value = files[field];
      var many = value && typeof value.length === "number" ? Array.prototype.slice.call(value) : [value];
      many.forEach(function (file) { if (file) list.push({ field: field, file: file, accept: "" }); });
    });
    return list;
  }

  // What the server would refuse anyway (413, wrong type), said before anything is uploaded.
  function checkFiles(list) {
    var problems = {}, total = 0, limit = (config.maxUploadMb || 0) * 1024 * 1024;
    list.forEach(function (item) {
      total += item.file.size || 0;
      if (!accepts(item.file, item.accept)) problems[item.field] = item.file.name + " is not an accepted type (" + item.accept + ").";
    });
    if (limit && total > limit) {
      problems[list[0].field] = "The files are larger than the " + config.maxUploadMb + " MB this task accepts.";
    }
    return Object.keys(problems).length ? problems : null;
  }

  function accepts(file, accept) {
    if (!accept) return true;
    var name = (file.name || "").toLowerCase(), type = (file.type || "").toLowerCase();
    return accept.split(",").some(function (rule) {
      rule = rule.trim().toLowerCase();
      if (!rule) return false;
      if (rule.charAt(0) === ".") return name.slice(-rule.length) === rule;
      if (rule.slice(-2) === "/*") return type.indexOf(rule.slice(0, -1)) === 0;
      return type === rule;
    });
  }

  // --- what the worker sees ------------------------------------------------------------------
  function box(id, role) {
    var found = el(id);
    if (found || form) return found; // a task page's shell has its own boxes
    var holder = el("crowd-sdk");
    if (!holder) {
      holder = document.createElement("div");
      holder.id = "crowd-sdk";
      holder.style.cssText = "font:16px/1.4 system-ui,sans-serif;margin:0 0 1rem";
      document.body.insertBefore(holder, document.body.firstChild);
    }
    found = document.createElement("p");
    found.id = id; found.className = "crowd-banner"; found.setAttribute("role", role);
    found.style.cssText = "margin:.5rem;padding:.6rem .8rem;border-radius:.4rem;background:#fff6d6;border:1px solid #e8d48a";
    holder.appendChild(found);
    return found;
  }

  function show(id, role, text) {
    var target = box(id, role);
    if (!target) return;
    target.textContent = text;
    target.classList.toggle("crowd-hidden", !text);
    target.style.display = text ? "" : "none";
  }

  function status(text) { if (document.body) show("crowd-status", "status", text); }

  function failed(error) {
    status("");
    var tried = el("crowd-dry-run");
    if (tried) tried.parentNode.removeChild(tried);
    var lines = [error.message];
    Object.keys(error.errors || {}).forEach(function (k) { lines.push(k + ": " + error.errors[k]); });
    show("crowd-errors", "alert", lines.join("\n"));
    buttons().forEach(function (b) { b.disabled = false; });
    // a page that lays out its own fields (the form composer) shows each message beside its field too
    document.dispatchEvent(new CustomEvent("crowd:failed", { detail: { reason: error.reason, errors: error.errors || {} } }));
  }

  function buttons() {
    if (!form) return [];
    return Array.prototype.slice.call(form.querySelectorAll(
      "button:not([type]), button[type=submit], input[type=submit], input[type=image]"));
  }

  // A dry run: what the server would store, shown under the form; the form stays as it is.
  function tried(reply) {
    status("");
    show("crowd-errors", "alert", "");
    buttons().forEach(function (b) { b.disabled = false; });
    var panel = el("crowd-dry-run");
    if (!panel) {
      panel = document.createElement("section");
      panel.id = "crowd-dry-run"; panel.className = "crowd-dry-run"; panel.setAttribute("role", "status");
      (form || document.body).appendChild(panel);
    }
    panel.textContent = "";
    var head = document.createElement("p");
    head.textContent = reply.message || "Dry run: nothing was stored.";
    var shown = document.createElement("pre");
    var stored = { answers: reply.answers || {} };
    if (reply.files && Object.keys(reply.files).length) stored.files = reply.files;
    if (reply.feedback !== undefined && reply.feedback !== null) stored.feedback = reply.feedback;
    shown.textContent = JSON.stringify(stored, null, 2);
    panel.appendChild(head); panel.appendChild(shown);
    document.dispatchEvent(new CustomEvent("crowd:dry-run", { detail: stored }));
  }

  function finish(reply) {
    var c = reply.completion || {};
    if (c.kind === "redirect" && c.url) { window.location.assign(c.url); return; }
    if (c.kind === "reload") { window.location.reload(); return; }
    if (c.kind === "form_post" && c.url) {
      var f = document.createElement("form");
      f.method = "post"; f.action = c.url;
      Object.keys(c.fields || {}).forEach(function (k) {
        var i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = c.fields[k]; f.appendChild(i);
      });
      document.body.appendChild(f); HTMLFormElement.prototype.submit.call(f); return;
    }
    if (form) {
      Array.prototype.forEach.call(form.querySelectorAll("fieldset"), function (s) { s.disabled = true; });
      buttons().forEach(function (b) { b.disabled = true; });
      var main = el("crowd-submit");
      if (main) main.textContent = "Saved";
    }
    var feedback = el("crowd-feedback");
    if (feedback) feedback.disabled = true;
    show("crowd-errors", "alert", "");
    var notice = el("crowd-notice"); // "Welcome back…" is about the unit just finished
    if (notice) notice.style.display = "none";
    status(c.message || "Thank you! Your answers are saved.");
    var done = el("crowd-status");
    if (done) { done.classList.add("crowd-ok"); done.id = "crowd-saved"; }
    if (c.kind === "next") nextUnit(done);
  }

  // The worker's next unit: the same address again (the router gives them their next unit, or says
  // there is none left); a link for whoever does not want to wait.
  function nextUnit(banner) {
    if (banner) {
      banner.appendChild(document.createTextNode(" Your next unit opens in a moment. "));
      var link = document.createElement("a");
      link.href = here; link.id = "crowd-next"; link.textContent = "Next unit now";
      banner.appendChild(link);
    }
    setTimeout(function () { window.location.assign(here); }, NEXT_UNIT_MS);
  }

  // --- task pages: the shell's form ----------------------------------------------------------
  // Bound on the document, so a submit works even while a slow template script holds the page back.
  document.addEventListener("submit", function (event) {
    if (!form || event.target !== form) return;
    event.preventDefault();
    if (saved || saving) return;
    if (!form.checkValidity()) { form.reportValidity(); return; }
    var list = [];
    Array.prototype.forEach.call(form.querySelectorAll("input[type=file]"), function (input) {
      Array.prototype.forEach.call(input.files || [], function (file) {
        list.push({ field: input.name, file: file, accept: input.getAttribute("accept") || "" });
      });
    });
    var problems = checkFiles(list);
    if (problems) { failed(refused("invalid", "Some files cannot be sent.", 0, problems)); return; }
    buttons().forEach(function (b) { b.disabled = true; });
    show("crowd-errors", "alert", "");
    send(function () { return new FormData(form); }).catch(function () { /* shown by failed() */ });
  });

  function bindForm() {
    form = document.querySelector("form.crowd-form");
    if (!form) return;
    var idField = form.querySelector("input[name=_crowd_submission_id]");
    if (idField) { if (idField.value) submissionId = idField.value; else idField.value = submissionId; }
    // a template's own form.submit() (MTurk style) goes through the same path instead of around it
    form.submit = function () { if (form.requestSubmit) form.requestSubmit(); };
    if (hideSubmit && el("crowd-submit")) el("crowd-submit").hidden = true;
  }

  // --- JS task pages: what the shell would otherwise show ------------------------------------
  function decorate() {
    if (form) return;
    if (config.refusal) show("crowd-refusal", "alert", config.refusal.message);
    else if (config.mode === "preview") show("crowd-preview", "status", "Preview: this is what the task looks like. Accept it to start working.");
    else if (config.mode === "dry_run") show("crowd-preview", "status", DRY_RUN);
    if (config.notice) show("crowd-notice", "status", config.notice);
    if (config.feedback && !config.refusal) {
      var wrap = document.createElement("div");
      wrap.className = "crowd-feedback";
      wrap.style.cssText = "font:16px/1.4 system-ui,sans-serif;margin:1rem .5rem";
      var label = document.createElement("label");
      label.htmlFor = "crowd-feedback"; label.textContent = config.feedback; label.style.display = "block";
      var area = document.createElement("textarea");
      area.id = "crowd-feedback"; area.maxLength = 5000; area.rows = 3; area.style.width = "100%";
      area.disabled = config.mode === "preview";
      wrap.appendChild(label); wrap.appendChild(area);
      document.body.appendChild(wrap);
    }
  }

  // --- MTurk, Turkle and Mephisto templates call these ---------------------------------------
  var hideSubmit = false;
  if (config.kind === "dollar") {
    var params = new URLSearchParams(window.location.search);
    window.turkGetParam = window.turkGetParam || function (name, fallback) {
      return params.has(name) ? params.get(name) : fallback;
    };
    window.turkSetAssignmentID = window.turkSetAssignmentID || function () {
      var field = el("assignmentId");
      if (field) field.value = params.get("assignmentId") || params.get("assignment_id") || "";
    };
    var settings = {};
    window._MEPHISTO_CONFIG_ = window._MEPHISTO_CONFIG_ || {
      get: function (key) { return settings[key]; },
      set: function (key, value) {
        settings[key] = value;
        if (key === "HIDE_SUBMIT_BUTTON") {
          hideSubmit = !!value;
          if (el("crowd-submit")) el("crowd-submit").hidden = hideSubmit;
        }
      }
    };
  }

  // --- calls to the task's procedures ---------------------------------------------------------
  // One call in flight at a time, in the order the page made them; each keeps its id across retries
  // (a dropped socket, then the same id again on a new socket or by POST), so it is answered once.
  var socket = null;
  var queue = [];
  var inflight = null;

  function call(name, args) {
    if (args === undefined) args = {};
    if (typeof name !== "string" || !name) return Promise.reject(refused("bad_call", "crowd.call takes a procedure name"));
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      return Promise.reject(refused("bad_call", "crowd.call takes an object of args"));
    }
    if (config.mode === "dry_run") {
      return Promise.reject(refused("preview", "Calls to the task's procedures are answered once the task is launched."));
    }
    if (config.mode !== "task" || !config.token) {
      return Promise.reject(refused("preview", "This is a preview: accept the task to use it."));
    }
    return new Promise(function (resolve, reject) {
      queue.push({ id: newId(), name: name, args: args, resolve: resolve, reject: reject, attempt: 0, via: null });
      pump();
    });
  }

  function pump() {
    if (inflight || !queue.length) return;
    inflight = queue.shift();
    sendCall(inflight);
  }

  function sendCall(c) {
    if (socket && socket.readyState === 1) {
      c.via = socket;
      socket.send(JSON.stringify({ type: "call", id: c.id, name: c.name, args: c.args }));
      return;
    }
    c.via = "post";
    fetch(new URL("call", root).toString(), {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ token: config.token, id: c.id, name: c.name, args: c.args })
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (reply) {
        if (response.status >= 500) throw new Error("server error " + response.status);
        if (!response.ok) reply = { id: c.id, ok: false, message: reply.message || ("The task could not answer (" + response.status + ").") };
        if (inflight === c) answered(reply);
      });
    }).catch(function () { if (inflight === c) retryCall(c); });
  }

  function retryCall(c) {
    c.attempt += 1;
    c.via = null;
    if (c.attempt > 6) { answered({ id: c.id, ok: false, message: "Could not reach the server; please try again." }); return; }
    setTimeout(function () { if (inflight === c) sendCall(c); }, Math.min(250 * Math.pow(2, c.attempt), 8000));
  }

  function answered(reply) {
    var c = inflight;
    if (!c || reply.id !== c.id) return; // an answer to a call already answered
    inflight = null;
    if (reply.ok) c.resolve(reply.result || {});
    else c.reject(refused("call_failed", reply.message || "The task could not answer; please try again."));
    pump();
  }

  function callArgs(spec) {
    spec = (spec || "").trim();
    if (!spec) return {};
    if (spec.charAt(0) === "{") return JSON.parse(spec);
    var args = {};
    spec.split(",").forEach(function (selector) {
      var found = document.querySelector(selector.trim());
      if (!found) return;
      var inputs = found.matches("input, textarea, select") ? [found] : found.querySelectorAll("input, textarea, select");
      Array.prototype.forEach.call(inputs, function (input) {
        var key = input.name || input.id;
        if (!key || ((input.type === "radio" || input.type === "checkbox") && !input.checked)) return;
        args[key] = input.value;
      });
    });
    return args;
  }

  function resultText(result) {
    if (typeof result.text === "string") return result.text;
    var keys = Object.keys(result);
    return keys.length === 1 ? String(result[keys[0]]) : JSON.stringify(result);
  }

  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("[data-crowd-call]") : null;
    if (!button) return;
    event.preventDefault();
    var name = button.getAttribute("data-crowd-call");
    var selector = button.getAttribute("data-crowd-result");
    var target = selector ? document.querySelector(selector) : null;
    var args;
    try { args = callArgs(button.getAttribute("data-crowd-args")); } catch (e) { args = null; }
    if (target) { target.textContent = "…"; target.classList.remove("crowd-call-error"); target.setAttribute("aria-busy", "true"); }
    button.disabled = true;
    var done = args === null ? Promise.reject(refused("bad_call", "data-crowd-args is not valid JSON")) : call(name, args);
    done.then(function (result) {
      if (target) target.textContent = resultText(result);
      button.dispatchEvent(new CustomEvent("crowd:result", { bubbles: true, detail: { name: name, args: args, result: result } }));
    }, function (error) {
      if (target) { target.textContent = error.message; target.classList.add("crowd-call-error"); }
      button.dispatchEvent(new CustomEvent("crowd:error", { bubbles: true, detail: { name: name, args: args, message: error.message } }));
    }).then(function () {
      button.disabled = false;
      if (target) target.removeAttribute("aria-busy");
    });
  });

  // --- a shared task's room: lobby, conversation, partners who drop out ------------------------
  var room = { state: "none", role: null, roles: [], turn: null, messages: [], listeners: {}, pending: {} };
  var released = false;

  function emit(type, message) {
    (room.listeners[type] || []).forEach(function (callback) {
      try { callback(message, window.crowd.chat); } catch (e) { setTimeout(function () { throw e; }); }
    });
  }

  // a page that shows the room itself (it listens) gets no banner as well
  function announce(type, text) { if (!(room.listeners[type] || []).length) status(text); }

  function heard(message) {
    var last = room.messages.length ? room.messages[room.messages.length - 1].seq : 0;
    if (message.seq > last) room.messages.push(message);
    if ("turn" in message) room.turn = message.turn;
  }

  function onRoom(msg) {
    if (msg.type === "lobby") {
      room.state = "lobby"; room.role = msg.role; room.roles = msg.roles;
      announce("lobby", "Waiting for " + (msg.of - msg.here === 1 ? "your partner" : (msg.of - msg.here) + " more people") +
        " (" + msg.here + " of " + msg.of + " here)…");
      emit("lobby", msg);
    } else if (msg.type === "room") {
      room.state = msg.state; room.role = msg.role; room.roles = msg.roles; room.turn = msg.turn;
      room.messages = msg.history.slice();
      if (!saved) announce("start", msg.state === "ended" ? "This conversation has ended; please submit." : "");
      emit("start", msg);
    } else if (msg.type === "message" || msg.type === "event") {
      heard(msg);
      var waiting = msg.id && room.pending[msg.id];
      if (waiting) { delete room.pending[msg.id]; waiting.resolve(msg); }
      emit(msg.type, msg);
    } else if (msg.type === "refused") {
      var refusedSay = room.pending[msg.id];
      if (refusedSay) { delete room.pending[msg.id]; refusedSay.reject(refused("refused", msg.message)); }
    } else if (msg.type === "ended") {
      room.state = "ended"; room.turn = null;
      if (!saved) announce("ended", msg.message);
      emit("ended", msg);
    } else if (msg.type === "released") {
      room.state = "released"; released = true;
      announce("released", msg.message);
      if (form) Array.prototype.forEach.call(form.querySelectorAll("fieldset, button"), function (b) { b.disabled = true; });
      emit("released", msg);
    }
  }

  function say(text) {
    if (typeof text !== "string" || !text.trim()) return Promise.reject(refused("refused", "Write something first."));
    if (config.mode !== "task") return Promise.reject(refused("preview", "This is a preview: accept the task to talk."));
    return new Promise(function (resolve, reject) {
      var id = newId();
      room.pending[id] = { resolve: resolve, reject: reject, text: text };
      if (socket && socket.readyState === 1) socket.send(JSON.stringify({ type: "say", id: id, text: text }));
      // else: sent when the socket is back (the same id: the room keeps it once)
    });
  }

  function resendSays() {
    Object.keys(room.pending).forEach(function (id) {
      socket.send(JSON.stringify({ type: "say", id: id, text: room.pending[id].text }));
    });
  }

  var chat = {
    say: say,
    on: function (type, callback) { (room.listeners[type] = room.listeners[type] || []).push(callback); return chat; }
  };
  ["role", "roles", "turn", "state", "messages"].forEach(function (key) {
    Object.defineProperty(chat, key, { get: function () { return room[key]; }, enumerable: true });
  });

  // --- heartbeat: lets the requester see who is working and re-offer abandoned units -----------
  var messages = {
    expired: "This task has ended; your unit was withdrawn.",
    timeout: "Time is up for this unit; it was offered to another worker.",
    disconnect: "You were disconnected for too long; this unit may have gone to another worker.",
    returned: "You returned this unit."
  };
  function connect(delay) {
    if (config.mode !== "task" || !config.token || saved || !window.WebSocket) return;
    var url = new URL("ws", root);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", config.token);
    var ws = new WebSocket(url.toString());
    var timer = null;
    ws.onopen = function () {
      delay = 1000;
      socket = ws;
      if (inflight && !inflight.via) sendCall(inflight);
      resendSays();
      ws.send(JSON.stringify({ type: "heartbeat" }));
      timer = setInterval(function () { ws.send(JSON.stringify({ type: "heartbeat" })); }, 5000);
    };
    ws.onmessage = function (event) {
      var msg = JSON.parse(event.data);
      if (msg.type === "status" && messages[msg.status] && !saved) status(messages[msg.status]);
      else if (msg.type === "result") answered(msg);
      else onRoom(msg);
    };
    ws.onclose = function () {
      clearInterval(timer);
      if (socket === ws) socket = null;
      // a call sent on this socket may never be answered on it: send it again (same id: answered once)
      if (inflight && inflight.via === ws) retryCall(inflight);
      if (!saved && !released) setTimeout(function () { connect(Math.min(delay * 2, 15000)); }, delay);
    };
  }

  window.crowd = {
    data: config.data || {},
    mode: config.mode,
    refusal: config.refusal || null,
    submissionId: submissionId,
    submit: submit,
    call: call,
    chat: chat,
    onReady: function (callback) {
      if (ready === null) callback(window.crowd); else ready.push(callback);
    }
  };

  // A dry run sits in a notebook's frame: tell it the page's height, so the whole page shows (Submit too).
  function reportHeight() {
    if (config.mode !== "dry_run" || window.parent === window || !window.ResizeObserver) return;
    var last = 0;
    var tell = function () {
      var height = Math.ceil(document.documentElement.scrollHeight);
      if (height !== last) { last = height; window.parent.postMessage({ crowd: "height", height: height }, "*"); }
    };
    new ResizeObserver(tell).observe(document.body);
    window.addEventListener("load", tell);
    tell();
  }

  function start() {
    bindForm();
    reportHeight();
    window.crowd.submissionId = submissionId;
    decorate();
    connect(1000);
    var callbacks = ready;
    ready = null;
    callbacks.forEach(function (callback) { callback(window.crowd); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
