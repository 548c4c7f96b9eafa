// The dashboard's only script: submit a card's form to the API's own routes with the session cookie and
// the CSRF token, follow the events stream, count down, bulk-resolve a run group, flip a policy.
// Plain JavaScript, no build step, nothing fetched from elsewhere.
(function () {
  "use strict";

  var meta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = meta ? meta.getAttribute("content") : "";
  var LEAVE_MS = 4000; // how long a resolved card stays, saying what happened, before it goes
  var mine = {}; // approval ids this page resolved (its own outcome is shown, not the stream's)

  function announce(text) {
    var el = document.getElementById("announce");
    if (el) { el.textContent = text; }
  }

  function api(method, url, body) {
    var headers = { "Accept": "application/json" };
    if (method !== "GET") { headers["X-CSRF-Token"] = CSRF; headers["Content-Type"] = "application/json"; }
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { status: resp.status, ok: resp.ok, data: data };
      });
    });
  }

  function cardOf(id) {
    return document.querySelector('.card[data-approval-id="' + CSS.escape(id) + '"]');
  }

  function updateCount() {
    var n = document.querySelectorAll("#queue .card:not(.leaving)").length;
    var count = document.getElementById("pending-count");
    if (count) { count.textContent = String(n); }
    var empty = document.getElementById("empty");
    if (empty) { empty.hidden = n > 0; }
  }

  function leave(card, delay) {
    if (!card || card.classList.contains("leaving")) { return; }
    card.classList.add("leaving");
    updateCount();
    setTimeout(function () { card.remove(); updateCount(); }, delay);
  }

  function outcomeWords(status) {
    return { approved: "Approved", denied: "Denied", submitted: "Answered", expired: "Expired" }[status] || status;
  }

  function disable(card) {
    card.querySelectorAll("button, input, select, textarea").forEach(function (el) { el.disabled = true; });
  }

  function clearSecrets(form) {
    form.querySelectorAll('input[type="password"]').forEach(function (el) { el.value = ""; });
  }

  // ------------------------------------------------------------------------------------ resolving a card

  function valuesOf(form) {
    var values = {};
    form.querySelectorAll("[data-type]").forEach(function (el) {
      var type = el.getAttribute("data-type");
      if (type === "checkbox") { values[el.name] = el.checked; return; }
      if (el.value === "") { return; }
      values[el.name] = type === "number" ? Number(el.value) : el.value;
    });
    return values;
  }

  function clearErrors(form) {
    form.querySelectorAll(".field-error, .form-error").forEach(function (el) { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  function showError(form, field, message) {
    var box = field && form.querySelector('.field[data-field="' + CSS.escape(field) + '"]');
    if (box) {
      box.querySelector(".field-error").textContent = message;
      var input = box.querySelector("[data-type]");
      if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    } else {
      form.querySelector(".form-error").textContent = message;
    }
  }

  function resultText(task) {
    if (!task) { return ""; }
    var parts = (task.status && task.status.message && task.status.message.parts) || [];
    var text = parts.filter(function (p) { return p.kind === "text"; }).map(function (p) { return p.text; }).join(" ");
    return text;
  }

  function alreadyResolved(card, id) {
    var out = card.querySelector(".outcome");
    return api("GET", "/v1/approvals/" + encodeURIComponent(id)).then(function (r) {
      var a = r.data || {};
      var text;
      if (a.status === "expired") {
        text = "This approval expired before a decision.";
      } else if (a.resolved_by) {
        text = "Already resolved by " + a.resolved_by + " (" + outcomeWords(a.status).toLowerCase() + ").";
      } else {
        text = "Already resolved by someone else.";
      }
      out.textContent = text;
      announce(text);
      disable(card);
      leave(card, LEAVE_MS);
    });
  }

  function submitCard(form, submitter) {
    var card = form.closest(".card");
    var id = card.getAttribute("data-approval-id");
    var resolution = valuesOf(form);
    if (submitter && submitter.name === "decision") { resolution.decision = submitter.value; }
    clearErrors(form);
    mine[id] = true;
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    return api("POST", "/messages/" + encodeURIComponent(id) + "/resolve", { resolution: resolution })
      .then(function (r) {
        if (r.ok) {
          clearSecrets(form);
          var words = r.data.decision === "deny" ? "Denied" : r.data.decision === "submit" ? "Submitted" : "Approved";
          var result = resultText(r.data.task);
          var text = words + "." + (result ? " " + result : "");
          form.remove();
          card.querySelector(".outcome").textContent = text;
          announce(text);
          card.classList.add("done");
          leave(card, LEAVE_MS * 2);
          return;
        }
        delete mine[id];
        buttons.forEach(function (b) { b.disabled = false; });
        var err = (r.data && r.data.error) || {};
        if (r.status === 409 || r.status === 410) { clearSecrets(form); return alreadyResolved(card, id); }
        if (r.status === 401) { window.location.assign("/dashboard/login"); return; }
        showError(form, err.field, err.message || "The server refused this (" + r.status + ").");
      })
      .catch(function () {
        delete mine[id];
        buttons.forEach(function (b) { b.disabled = false; });
        showError(form, null, "The server could not be reached. Try again.");
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("resolve")) { return; }
    event.preventDefault();
    submitCard(form, event.submitter);
  });

  // ------------------------------------------------------------------------------------ bulk and policies

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.bulk, button.flip");
    if (!button) { return; }
    if (button.classList.contains("bulk")) {
      var runId = button.getAttribute("data-run-id");
      var action = button.getAttribute("data-action");
      var group = button.closest(".group");
      group.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      api("POST", "/v1/approvals/bulk-resolve", { run_id: runId, action: action }).then(function (r) {
        var out = group.querySelector(".bulk-outcome");
        if (r.ok) {
          out.textContent = (action === "approve" ? "Approved " : "Denied ") + r.data.resolved + " in this run.";
          r.data.ids.forEach(function (id) { mine[id] = true; leave(cardOf(id), LEAVE_MS); });
        } else {
          group.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
          out.textContent = ((r.data && r.data.error) || {}).message || "Refused (" + r.status + ").";
        }
        announce(out.textContent);
      });
    } else {
      var name = button.getAttribute("data-policy");
      var to = button.getAttribute("data-to");
      var item = button.closest(".policy");
      button.disabled = true;
      api("POST", "/internal/policies/update", { policy_id: name, enforcement: to }).then(function (r) {
        var out = item.querySelector(".policy-outcome");
        button.disabled = false;
        if (r.ok) {
          item.setAttribute("data-enforcement", r.data.enforcement);
          item.querySelector(".enforcement").textContent = r.data.enforcement;
          var back = r.data.enforcement === "allow" ? "require_approval" : "allow";
          button.setAttribute("data-to", back);
          button.textContent = back === "allow" ? "Always allow" : "Require approval";
          out.textContent = name + " is now " + r.data.enforcement + ".";
        } else {
          out.textContent = ((r.data && r.data.error) || {}).message || "Refused (" + r.status + ").";
        }
        announce(out.textContent);
      });
    }
  });

  // ------------------------------------------------------------------------------------ countdowns

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var left = Math.max(0, Math.round(parseFloat(el.getAttribute("data-expires")) - now));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = left <= 0 ? "expired" : (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
    });
  }

  // ------------------------------------------------------------------------------------ live updates

  function addCard(id) {
    if (cardOf(id)) { return; }
    fetch("/dashboard/cards/" + encodeURIComponent(id), { credentials: "same-origin" }).then(function (resp) {
      if (!resp.ok) { return null; }
      return resp.text();
    }).then(function (html) {
      if (!html || cardOf(id)) { return; }
      var holder = document.createElement("div");
      holder.innerHTML = html; // rendered and escaped by the server
      var card = holder.querySelector(".card");
      if (!card) { return; }
      document.getElementById("queue").appendChild(card);
      updateCount();
      tick();
      announce("New approval request: " + card.querySelector("h2").textContent);
    });
  }

  function resolvedElsewhere(data) {
    var id = data.approval_id;
    var card = cardOf(id);
    if (!card || mine[id]) { return; }
    var text = data.kind === "approval.expired" ? "Expired."
      : outcomeWords(data.status) + " by " + (data.resolved_by || "someone") + (data.surface ? " via " + data.surface : "") + ".";
    card.querySelector(".outcome").textContent = text;
    clearSecrets(card);
    disable(card);
    announce(text);
    leave(card, LEAVE_MS);
  }

  function follow() {
    var live = document.getElementById("live");
    if (!live || !window.EventSource) { return; }
    var source = new EventSource("/v1/events/stream", { withCredentials: true });
    source.onopen = function () { live.textContent = "Live"; live.setAttribute("data-state", "open"); };
    source.onerror = function () { live.textContent = "Reconnecting…"; live.setAttribute("data-state", "retrying"); };
    source.addEventListener("approval.created", function (e) {
      var body = JSON.parse(e.data);
      if (body.data && body.data.approval_id) { addCard(body.data.approval_id); }
    });
    ["approval.resolved", "approval.expired"].forEach(function (kind) {
      source.addEventListener(kind, function (e) {
        var body = JSON.parse(e.data);
        var data = body.data || {};
        data.kind = kind;
        if (!data.approval_id) { data.approval_id = body.subject; }
        resolvedElsewhere(data);
      });
    });
  }

  if (document.getElementById("queue")) {
    tick();
    setInterval(tick, 1000);
    follow();
  }
})();
