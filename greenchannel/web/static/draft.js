/* Forms that keep work: the referral form is saved in this browser tab (sessionStorage: gone
   when the tab is closed, and cleared at logout, for shared ward computers) as it is filled in
   and restored after a reload or a lost connection, until the case page confirms it was sent; the submit
   button shows progress and cannot send twice; a refused form brings the eye to its errors. */
(function () {
  "use strict";
  var store;
  try { store = window.sessionStorage; } catch (e) { store = null; }

  // The case page after a new referral (?sent=1): the draft has become a case.
  var clear = document.querySelector("[data-clear-draft]");
  if (clear && store) store.removeItem(clear.getAttribute("data-clear-draft"));

  // A confirmation or a refusal that belongs to a form further down: bring it into view.
  var message = document.getElementById("capacity-message");
  if (message) { message.scrollIntoView({ block: "center" }); message.focus({ preventScroll: true }); }

  var form = document.querySelector("form[data-draft]");
  if (!form) return;
  var key = form.getAttribute("data-draft");

  function fields() {
    return form.querySelectorAll("input[name], textarea[name], select[name]");
  }
  function skip(el) {
    return el.type === "hidden" || el.type === "search" || el.type === "submit";
  }
  function save() {
    if (!store) return;
    var data = {};
    var els = fields();
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (skip(el)) continue;
      if (el.type === "checkbox" || el.type === "radio") {
        if (el.checked) (data[el.name] = data[el.name] || []).push(el.value);
      } else if (el.value) {
        data[el.name] = [el.value];
      }
    }
    try { store.setItem(key, JSON.stringify({ saved: Date.now(), fields: data })); } catch (e) { /* full */ }
  }
  function restore() {
    if (!store) return false;
    var raw = store.getItem(key);
    if (!raw) return false;
    var draft;
    try { draft = JSON.parse(raw); } catch (e) { store.removeItem(key); return false; }
    // A draft older than 12 hours belongs to another patient.
    if (!draft || !draft.fields || Date.now() - draft.saved > 12 * 3600 * 1000) {
      store.removeItem(key);
      return false;
    }
    var els = fields();
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (skip(el)) continue;
      var values = draft.fields[el.name] || [];
      if (el.type === "checkbox" || el.type === "radio") {
        el.checked = values.indexOf(el.value) >= 0 || (el.type === "radio" && !values.length && el.defaultChecked);
      } else {
        el.value = values.length ? values[0] : "";
      }
    }
    var details = form.querySelector("details.handover");
    if (details && ["onset_time", "born_time", "sbp", "hr", "blood_loss_ml", "note", "treatments"].some(function (n) { return draft.fields[n]; })) {
      details.open = true;
    }
    return true;
  }

  var hint = form.querySelector(".draft-hint");
  if (hint && store) hint.hidden = false;
  // A refused form came back from the server with what was sent: that wins over the draft.
  if (form.hasAttribute("data-errors")) {
    save();
    var summary = document.getElementById("form-errors");
    var first = form.querySelector("[aria-invalid=true], .has-error input");
    if (summary) { summary.focus(); summary.scrollIntoView({ block: "start" }); }
    else if (first) first.focus();
  } else {
    restore();
  }
  form.addEventListener("input", save);
  form.addEventListener("change", save);

  form.addEventListener("submit", function (event) {
    var button = form.querySelector("button[type=submit]");
    if (form.getAttribute("data-sending")) { event.preventDefault(); return; }
    form.setAttribute("data-sending", "1");
    save();
    if (button) {
      button.setAttribute("aria-busy", "true");
      button.classList.add("busy");
      if (button.getAttribute("data-busy")) button.textContent = button.getAttribute("data-busy");
    }
    // If nothing comes back (lost signal), let the person try again.
    window.setTimeout(function () {
      form.removeAttribute("data-sending");
      if (button) { button.removeAttribute("aria-busy"); button.classList.remove("busy"); }
    }, 20000);
  });
})();
