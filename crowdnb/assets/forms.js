// crowdnb form composer: checks a form's answers in the page before it is sent (the server checks
// them again), shows each problem next to its field and in an announced summary, collapses sections,
// and calls the config's custom validators and triggers (insertions/custom_*.js, or global functions).
// The messages are the server's own words (crowdnb/validation.py), so both sides say the same thing.
(function () {
  "use strict";
  var node = document.getElementById("cf-config");
  if (!node) return;
  var cfg = JSON.parse(node.textContent);
  var form = node.closest("form");
  var page = {};
  try { page = JSON.parse(document.getElementById("crowd-config").textContent); } catch (e) { page = {}; }
  var live = page.mode === "task" || page.mode === "onboarding" || page.mode === "dry_run";
  var modules = { validators: {}, triggers: {} };
  var pending = [];
  var attempted = false;
  var BUILTIN = { required: 1, minLength: 1, maxLength: 1, regexp: 1, fileExtension: 1 };
  // the WHATWG definition of a valid e-mail address, as the server uses it
  var EMAIL = /^[a-zA-Z0-9.!#$%&'*+\/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
  var fields = Object.keys(cfg.fields).map(function (k) { return cfg.fields[k]; });

  Object.keys(cfg.modules || {}).forEach(function (kind) {
    var url = cfg.modules[kind];
    if (!url) return;
    pending.push(import(new URL(url, document.baseURI).href).then(
      function (module) { modules[kind] = module; },
      function (error) { console.error("crowdnb forms: could not load " + url, error); }));
  });
  var loaded = Promise.all(pending).then(function () { pending = []; });

  function controls(field) {
    return Array.prototype.slice.call(form.querySelectorAll('[name="' + CSS.escape(field.name) + '"]'));
  }
  function byId(id) { return document.getElementById(id); }
  function wrapper(field) { return form.querySelector('.cf-field[data-name="' + CSS.escape(field.name) + '"]'); }

  // A field's value as Mephisto's functions expect it: text, a list (multi-select), {option: bool}.
  function valueOf(field) {
    var els = controls(field);
    if (field.type === "checkbox") {
      var out = {};
      els.forEach(function (el) { out[el.value] = el.checked; });
      return out;
    }
    if (field.type === "radio") {
      var on = els.filter(function (el) { return el.checked; })[0];
      return on ? on.value : "";
    }
    if (!els.length) return "";
    if (field.type === "select" && field.multiple) {
      return Array.prototype.map.call(els[0].selectedOptions, function (o) { return o.value; });
    }
    if (field.type === "file") return els[0].files && els[0].files.length ? els[0].files[0] : null;
    return els[0].value;
  }

  function setValue(name, value) {
    var field = cfg.fields[name];
    if (!field) return;
    controls(field).forEach(function (el) {
      if (field.type === "checkbox") el.checked = Array.isArray(value) ? value.indexOf(el.value) >= 0 : !!(value || {})[el.value];
      else if (field.type === "radio") el.checked = el.value === String(value);
      else if (field.type === "select" && field.multiple) {
        Array.prototype.forEach.call(el.options, function (o) { o.selected = (value || []).indexOf(o.value) >= 0; });
      } else if (field.type !== "file") el.value = value == null ? "" : value;
    });
    if (attempted) refresh(field);
  }

  function formData() {
    var data = {};
    fields.forEach(function (f) { data[f.name] = valueOf(f); });
    return data;
  }
  function formFields() {
    var out = {};
    fields.forEach(function (f) { out[f.name] = f.config; });
    return out;
  }

  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  function texts(field, value) {
    if (field.type === "checkbox") return Object.keys(value).filter(function (k) { return value[k]; });
    if (Array.isArray(value)) return value.filter(function (v) { return v !== ""; });
    var text = value == null ? "" : String(value).trim();
    return text ? [text] : [];
  }

  // The same checks, in the same order, as crowdnb/validation.py.
  function problem(field) {
    var v = field.validators || {};
    var value = valueOf(field);
    if (field.type === "file") {
      var files = (controls(field)[0] || {}).files || [];
      if (!files.length) return v.required ? "Please choose a file." : null;
      if (v.fileExtension) {
        var allowed = v.fileExtension.map(function (e) { return "." + e; });
        for (var i = 0; i < files.length; i++) {
          var name = files[i].name.toLowerCase();
          var ok = allowed.some(function (e) { return name.slice(-e.length) === e; });
          if (!ok) return files[i].name + " is not an accepted type (" + allowed.join(", ") + ").";
        }
      }
      return custom(field, value);
    }
    var values = texts(field, value);
    if (!values.length) return v.required ? "Please fill in this field." : null;
    if (field.type === "checkbox" || field.multiple) {
      if (v.minLength != null && values.length < v.minLength) return "Choose at least " + plural(v.minLength, "option") + ".";
      if (v.maxLength != null && values.length > v.maxLength) return "Choose at most " + plural(v.maxLength, "option") + ".";
      return custom(field, value);
    }
    var text = values[0];
    if (v.minLength != null && text.length < v.minLength) return "Use at least " + plural(v.minLength, "character") + " (you used " + text.length + ").";
    if (v.maxLength != null && text.length > v.maxLength) return "Use at most " + plural(v.maxLength, "character") + " (you used " + text.length + ").";
    if (field.type === "email" && !EMAIL.test(text)) return "Enter a valid e-mail address.";
    if (field.type === "number" && !isFinite(Number(text))) return "Enter a number.";
    if (v.regexp) {
      var flags = (v.regexp[1] || "").replace(/[gy]/g, ""); // a fresh, stateless test
      if (!new RegExp(v.regexp[0], flags).test(text)) return "The value does not have the expected format.";
    }
    return custom(field, value);
  }

  function custom(field, value) {
    var v = field.validators || {};
    var names = Object.keys(v).filter(function (k) { return !BUILTIN[k]; });
    for (var i = 0; i < names.length; i++) {
      var fn = modules.validators[names[i]] || window[names[i]];
      if (typeof fn !== "function") continue;
      var args = Array.isArray(v[names[i]]) ? v[names[i]] : [v[names[i]]];
      var message = fn.apply(null, [field.config, value].concat(args));
      if (message) return String(message);
    }
    return null;
  }

  function show(field, message) {
    var slot = byId(field.id + "-error");
    if (slot) slot.textContent = message || "";
    controls(field).forEach(function (el) {
      if (message) el.setAttribute("aria-invalid", "true"); else el.removeAttribute("aria-invalid");
    });
    var box = wrapper(field);
    if (box) box.classList.toggle("cf-invalid", !!message);
  }

  function refresh(field) { show(field, problem(field)); }

  function summarize(bad) {
    var summary = byId("cf-summary");
    summary.textContent = "";
    cfg.sections.forEach(function (s) {
      var count = bad.filter(function (b) { return byId(s.id).contains(byId(b[0].id)); }).length;
      var slot = byId(s.id + "-errors");
      if (slot) slot.textContent = count ? plural(count, "field") + " in this section need" + (count === 1 ? "s" : "") + " attention." : "";
      if (count) open(s, true);
    });
    if (!bad.length) return;
    var title = document.createElement("p");
    title.textContent = "Please correct " + (bad.length === 1 ? "one field" : bad.length + " fields") + ":";
    var list = document.createElement("ul");
    bad.forEach(function (b) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = "#" + b[0].id;
      link.textContent = (b[0].label || b[0].name) + ": " + b[1];
      link.addEventListener("click", function (event) { event.preventDefault(); focus(b[0]); });
      item.appendChild(link);
      list.appendChild(item);
    });
    summary.appendChild(title);
    summary.appendChild(list);
  }

  function focus(field) {
    var target = controls(field).filter(function (el) { return el.type !== "hidden"; })[0];
    if (target) target.focus(); else byId("cf-summary").focus();
  }

  function validate() {
    var bad = [];
    fields.forEach(function (f) {
      var message = problem(f);
      show(f, message);
      if (message) bad.push([f, message]);
    });
    summarize(bad);
    if (bad.length) focus(bad[0][0]);
    return bad.length === 0;
  }

  // Before crowd.js's own submit handler (this one listens while the event comes down, it listens
  // on the way up): a form with problems is not sent at all.
  document.addEventListener("submit", function (event) {
    if (event.target !== form || !live) return;
    if (pending.length) {
      event.preventDefault(); event.stopImmediatePropagation();
      loaded.then(function () { form.requestSubmit(); });
      return;
    }
    attempted = true;
    if (!validate()) { event.preventDefault(); event.stopImmediatePropagation(); }
  }, true);

  // After a first attempt, each field's message follows the worker's corrections.
  ["input", "change"].forEach(function (type) {
    form.addEventListener(type, function (event) {
      var name = event.target && event.target.name;
      if (!attempted || !cfg.fields[name]) return;
      refresh(cfg.fields[name]);
      summarize(fields.map(function (f) { return [f, problem(f)]; }).filter(function (b) { return b[1]; }));
    });
  });

  // What the server refused (a page and server that disagree), shown next to the fields too.
  document.addEventListener("crowd:failed", function (event) {
    var errors = (event.detail && event.detail.errors) || {};
    var bad = Object.keys(errors).filter(function (k) { return cfg.fields[k]; }).map(function (k) {
      show(cfg.fields[k], errors[k]);
      return [cfg.fields[k], errors[k]];
    });
    if (bad.length) summarize(bad);
  });

  // The shell puts the feedback box and its error area after the form's body: the form's own submit
  // button (and the instruction above it) go below them, where a submit button belongs.
  var errorArea = document.getElementById("crowd-errors");
  if (document.getElementById("crowd-feedback") && errorArea) {
    var after = errorArea;
    [form.querySelector(".cf-submit-instruction"), document.getElementById("crowd-submit")].forEach(function (el) {
      if (el) { after.insertAdjacentElement("afterend", el); after = el; }
    });
  }

  // --- sections ------------------------------------------------------------------------------
  function open(section, on) {
    var button = byId(section.id) && byId(section.id).querySelector(".cf-toggle");
    var body = byId(section.id + "-body");
    if (!button || !body) return;
    button.setAttribute("aria-expanded", on ? "true" : "false");
    body.hidden = !on;
  }
  cfg.sections.forEach(function (section) {
    if (!section.collapsable) return;
    open(section, !section.collapsed);
    var button = byId(section.id).querySelector(".cf-toggle");
    button.addEventListener("click", function () { open(section, button.getAttribute("aria-expanded") !== "true"); });
  });

  // --- triggers: function(formData, updateFormData, element, fieldValue, formFields, ...args) --------
  function fire(trigger, element, value) {
    loaded.then(function () {
      var fn = modules.triggers[trigger[1]] || window[trigger[1]];
      if (typeof fn !== "function") { console.warn("crowdnb forms: no trigger function " + trigger[1]); return; }
      try {
        fn.apply(null, [formData(), setValue, element, value, formFields()].concat(trigger[2] || []));
      } catch (error) {
        console.error("crowdnb forms: trigger " + trigger[1] + " failed", error);
      }
    });
  }
  var EVENTS = { onClick: "click", onChange: "change", onBlur: "blur", onFocus: "focus" };
  fields.forEach(function (field) {
    (field.triggers || []).forEach(function (trigger) {
      var grouped = field.type === "radio" || field.type === "checkbox";
      var targets = trigger[0] === "onClick" && grouped ? [wrapper(field)] : controls(field);
      targets.forEach(function (el) {
        if (el) el.addEventListener(EVENTS[trigger[0]], function () { fire(trigger, field.config, valueOf(field)); });
      });
    });
  });
  cfg.sections.forEach(function (section) {
    var heading = byId(section.id + "-title");
    (section.triggers || []).forEach(function (trigger) {
      if (heading) heading.addEventListener("click", function () { fire(trigger, section.config, null); });
    });
  });
  var submitButton = byId("crowd-submit");
  (cfg.submit.triggers || []).forEach(function (trigger) {
    if (submitButton) submitButton.addEventListener("click", function () { fire(trigger, cfg.submit.config, null); });
  });

  // --- file previews ---------------------------------------------------------------------------
  fields.forEach(function (field) {
    var img = byId(field.id + "-preview");
    if (field.type !== "file" || !img) return;
    controls(field)[0].addEventListener("change", function (event) {
      var file = event.target.files && event.target.files[0];
      var image = file && /^image\//.test(file.type);
      img.hidden = !image;
      if (image) { img.src = URL.createObjectURL(file); img.alt = "Preview of " + file.name; }
    });
  });

  window.crowdForms = {
    validate: validate,
    problem: function (name) { return cfg.fields[name] ? problem(cfg.fields[name]) : null; },
    values: formData,
    setValue: setValue,
    // Mephisto's helper: is this a valid value for the field? (logs why not when asked to)
    validateFieldValue: function (fieldConfig, value, log) {
      var field = cfg.fields[fieldConfig && fieldConfig.name];
      if (!field) return false;
      var before = valueOf(field);
      setValue(field.name, value);
      var message = problem(field);
      setValue(field.name, before);
      if (message && log) console.log("crowdnb forms: " + field.name + ": " + message);
      return !message;
    }
  };
})();
