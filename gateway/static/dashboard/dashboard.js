// The dashboard's only script: submit a card's form to the API's own routes with the session cookie and
// the CSRF token (with a denial's reason, or an approval's edited arguments), follow the events stream and
// keep cards current, count down, bulk-resolve a run group, flip a policy (tried on the recorded calls first).
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
      var input = box.querySelector("[data-type], [data-extra]");
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

  // ------------------------------------------------------------------------------------ reason and edits

  // JSON with its objects' keys sorted: an editor opened and left as it was sends no edit
  function canonical(value) {
    if (Array.isArray(value)) { return "[" + value.map(canonical).join(",") + "]"; }
    if (value && typeof value === "object") {
      return "{" + Object.keys(value).sort().map(function (k) {
        return JSON.stringify(k) + ":" + canonical(value[k]);
      }).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  // The edited arguments when the editor is open and changed; null when not; throws a message when invalid
  function editedArguments(form) {
    var toggle = form.querySelector(".edit-toggle");
    var editor = form.querySelector('textarea[data-extra="arguments"]');
    if (!toggle || !editor || toggle.getAttribute("aria-expanded") !== "true") { return null; }
    var parsed;
    try { parsed = JSON.parse(editor.value); } catch (e) { throw "Not valid JSON: " + e.message; }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw "The arguments must be a JSON object ({…}).";
    }
    var original = null;
    try { original = JSON.parse(editor.defaultValue); } catch (e) { original = null; }
    return canonical(parsed) === canonical(original) ? null : parsed;
  }

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest && event.target.closest("button.edit-toggle");
    if (!toggle) { return; }
    var open = toggle.getAttribute("aria-expanded") !== "true";
    var panel = document.getElementById(toggle.getAttribute("aria-controls"));
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.textContent = open ? "Keep the arguments as asked" : "Edit arguments";
    if (panel) { panel.hidden = !open; }
    var approve = toggle.form && toggle.form.querySelector('button[name="decision"][value="approve"]');
    if (approve) { approve.textContent = open ? "Approve with edits" : approve.getAttribute("data-label"); }
    if (open && panel) { panel.querySelector("textarea").focus(); }
  });

  document.addEventListener("input", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches('textarea[data-extra="reason"]')) { return; }
    var used = box.closest(".field").querySelector(".count .used");
    if (used) { used.textContent = String(box.value.length); }
  });

  // ------------------------------------------------------------------------------------ resolving a card

  function submitCard(form, submitter) {
    var card = form.closest(".card");
    var id = card.getAttribute("data-approval-id");
    var resolution = valuesOf(form);
    if (submitter && submitter.name === "decision") { resolution.decision = submitter.value; }
    clearErrors(form);
    var reasonBox = form.querySelector('textarea[data-extra="reason"]');
    var reason = reasonBox ? reasonBox.value.trim() : "";
    if (resolution.decision === "deny" && reason) { resolution.reason = reason; }
    var edited = null;
    if (resolution.decision === "approve") {
      try { edited = editedArguments(form); } catch (message) {
        showError(form, "arguments", String(message)); // checked here: nothing is sent
        return Promise.resolve();
      }
      if (edited) { resolution.arguments = edited; }
    }
    mine[id] = true;
    var buttons = Array.prototype.filter.call(form.querySelectorAll("button"), function (b) { return !b.disabled; });
    buttons.forEach(function (b) { b.disabled = true; });
    return api("POST", "/messages/" + encodeURIComponent(id) + "/resolve", { resolution: resolution })
      .then(function (r) {
        if (r.ok && r.data.new_state === "input-required" && r.data.decision === "approve") {
          // one approval of several: the card stays, saying who approved; this person's Approve stays off
          delete mine[id];
          buttons.forEach(function (b) { b.disabled = b === submitter; });
          announce("You approved; more approvals are needed.");
          refreshCard(id);
          return;
        }
        if (r.ok) {
          clearSecrets(form);
          var words = r.data.decision === "deny" ? "Denied" : r.data.decision === "submit" ? "Submitted" : "Approved";
          if (edited) { words += " with edits"; }
          var result = resultText(r.data.task);
          var text = words + "." + (result ? " " + result : "");
          if (resolution.reason) { text = words + ": " + resolution.reason; }
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
        if (r.status === 409 && /approved by you/.test(err.message || "")) {
          if (submitter) { submitter.disabled = true; }
          showError(form, null, err.message);
          refreshCard(id);
          return;
        }
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
      tryFlip(button);
    }
  });

  // A flip is tried first: the change is judged against the tenant's recorded calls (nothing is saved) and
  // what it would have done is shown with Confirm / Cancel; only Confirm saves it
  var VERBS = { require_approval: "held", block: "blocked", allow: "let through" };

  function count(n) { return Number(n).toLocaleString("en-US"); }

  function dryRunText(result) {
    var last = result.evaluated === 1 ? "the last call" : "the last " + count(result.evaluated) + " calls";
    if (!result.evaluated) { return "No recorded calls to try this change on."; }
    if (!result.changed) { return "This would have changed none of " + last + "."; }
    var by = {};
    Object.keys(result.transitions).forEach(function (key) {
      var after = key.split("\u2192")[1];
      by[after] = (by[after] || 0) + result.transitions[key];
    });
    var parts = Object.keys(by).sort().map(function (after) {
      return (VERBS[after] || after) + " " + count(by[after]);
    });
    return "This would have " + parts.join(" and ") + " of " + last + ".";
  }

  function showExamples(list, examples) {
    list.textContent = "";
    examples.slice(0, 5).forEach(function (ex) {
      var li = document.createElement("li");
      li.textContent = (ex.tool || "message") + (ex.agent ? " by " + ex.agent : "") + ": " + ex.before + " \u2192 "
        + ex.after + (ex.reason ? " (" + ex.reason + ")" : "");
      list.appendChild(li);
    });
    list.hidden = !examples.length;
  }

  function tryFlip(button) {
    var name = button.getAttribute("data-policy");
    var to = button.getAttribute("data-to");
    var item = button.closest(".policy");
    var out = item.querySelector(".policy-outcome");
    var panel = item.querySelector(".dry-run");
    button.disabled = true;
    out.textContent = "Trying the change on the recorded calls\u2026";
    api("POST", "/internal/policies/update", { policy_id: name, enforcement: to, dry_run: true }).then(function (r) {
      if (!r.ok) {
        button.disabled = false;
        out.textContent = ((r.data && r.data.error) || {}).message || "Refused (" + r.status + ").";
        announce(out.textContent);
        return;
      }
      out.textContent = "Changing " + name + " to " + to + ": " + dryRunText(r.data) + " Save the change?";
      showExamples(panel.querySelector(".dry-run-examples"), r.data.examples || []);
      panel.setAttribute("data-to", to);
      panel.hidden = false;
      panel.querySelector("button.confirm-flip").focus();
      announce(out.textContent);
    }).catch(function () {
      button.disabled = false;
      out.textContent = "The server could not be reached. Try again.";
    });
  }

  function closeFlip(item) {
    var panel = item.querySelector(".dry-run");
    panel.hidden = true;
    panel.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
    item.querySelector("button.flip").disabled = false;
  }

  function saveFlip(item) {
    var button = item.querySelector("button.flip");
    var name = button.getAttribute("data-policy");
    var to = item.querySelector(".dry-run").getAttribute("data-to");
    var out = item.querySelector(".policy-outcome");
    item.querySelectorAll(".dry-run button").forEach(function (b) { b.disabled = true; });
    api("POST", "/internal/policies/update", { policy_id: name, enforcement: to }).then(function (r) {
      closeFlip(item);
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

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.confirm-flip, button.cancel-flip");
    if (!button) { return; }
    var item = button.closest(".policy");
    if (button.classList.contains("confirm-flip")) {
      saveFlip(item);
      return;
    }
    closeFlip(item);
    item.querySelector(".policy-outcome").textContent = "Not changed.";
    announce("Not changed.");
    item.querySelector("button.flip").focus();
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

  // The card as the server renders it now (escaped there), or null when it is no longer pending
  function fetchCard(id) {
    return fetch("/dashboard/cards/" + encodeURIComponent(id), { credentials: "same-origin" }).then(function (resp) {
      return resp.ok ? resp.text() : null;
    }).then(function (html) {
      if (!html) { return null; }
      var holder = document.createElement("div");
      holder.innerHTML = html;
      return holder.querySelector(".card");
    });
  }

  // Bring a card's approvals and escalation up to date: only its data-live parts and its Approve button are
  // replaced, so a reason or an edit being typed into it is kept
  function refreshCard(id) {
    if (!cardOf(id)) { return; }
    fetchCard(id).then(function (fresh) {
      var card = cardOf(id);
      if (!fresh || !card || card.classList.contains("leaving")) { return; }
      var news = [];
      card.querySelectorAll("[data-live]").forEach(function (old) {
        var next = fresh.querySelector('[data-live="' + old.getAttribute("data-live") + '"]');
        if (!next || next.textContent === old.textContent) { return; }
        old.replaceWith(next);
        news.push(next.textContent.replace(/\s+/g, " ").trim());
      });
      var sel = 'button[name="decision"][value="approve"]';
      var approve = card.querySelector(sel), fresher = fresh.querySelector(sel);
      if (approve && fresher) {
        approve.disabled = fresher.disabled;
        var described = fresher.getAttribute("aria-describedby");
        if (described) { approve.setAttribute("aria-describedby", described); } else { approve.removeAttribute("aria-describedby"); }
      }
      if (news.length) { announce(card.querySelector("h2").textContent + ": " + news.filter(Boolean).join(". ")); }
    });
  }

  function addCard(id) {
    if (cardOf(id)) { return; }
    fetchCard(id).then(function (card) {
      if (!card || cardOf(id)) { return; }
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
      : outcomeWords(data.status) + " by " + (data.resolved_by || "someone") + (data.surface ? " via " + data.surface : "")
        + (data.reason ? ": " + data.reason : ".");
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
    // another approval of a quorum hold, or a hold escalated: the card is fetched again
    ["approval.progress", "approval.escalated"].forEach(function (kind) {
      source.addEventListener(kind, function (e) {
        var body = JSON.parse(e.data);
        var id = (body.data && body.data.approval_id) || body.subject;
        if (id) { refreshCard(id); }
      });
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
