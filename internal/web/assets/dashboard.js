(function () {
  var text = document.getElementById("status-text");
  var list = document.getElementById("timeline");
  var busy = document.body.getAttribute("data-busy") === "true";
  var addon = document.body.getAttribute("data-addon");
  function item(e) {
    var li = document.createElement("li");
    var t = document.createElement("time");
    t.setAttribute("datetime", e.at);
    t.textContent = e.when;
    var span = document.createElement("span");
    span.textContent = e.text;
    li.appendChild(t);
    li.appendChild(span);
    return li;
  }
  function poll() {
    fetch("/dashboard/status", {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) {
        if (r.status === 401 || r.status === 403) {
          text.textContent = "Your session has ended. Open this add-on again from your Heroku dashboard to follow the rotation.";
          return null;
        }
        // The add-on's record is gone (deprovisioned, then removed):
        // nothing more will change, so the page says so and stops.
        if (r.status === 404) {
          return r.json().then(function (d) {
            text.textContent = d.status || "This add-on is no longer known to the credential service.";
            return null;
          });
        }
        // Polled faster than a tab does (other tabs, a script): wait as
        // long as the answer says.
        if (r.status === 429) {
          setTimeout(poll, 1000 * (parseInt(r.headers.get("Retry-After"), 10) || 60));
          return null;
        }
        if (!r.ok) { throw new Error("status " + r.status); }
        return r.json();
      })
      .then(function (d) {
        if (!d) { return; }
        // Another tab signed in to another add-on: this page's add-on is
        // no longer the session's, and its status is not this one.
        if (d.instance_id !== addon) {
          text.textContent = "You opened another add-on in this browser. Open this add-on again from your Heroku dashboard to follow its rotation.";
          return;
        }
        text.textContent = d.status;
        while (list.firstChild) { list.removeChild(list.firstChild); }
        d.timeline.forEach(function (e) { list.appendChild(item(e)); });
        if (!d.busy) { window.location.replace("/dashboard"); return; }
        setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  if (busy) { setTimeout(poll, 2000); }
  // The counts the page was drawn with ("in 1 hour 29 minutes") are
  // counted again each second, by the server's rules (fromNow: cut down to
  // the minute, so no credential is promised more time than it has) and on
  // the server's clock as the page was drawn (data-now). When the first
  // one still to come is due, the page asks for the status: the
  // revocation has begun or is over, and the page follows it as it
  // follows a rotation, rather than show the time it was drawn at.
  var skew = Date.parse(document.body.getAttribute("data-now")) - Date.now();
  var counts = document.querySelectorAll("[data-until]");
  function plural(n, unit) { return n + " " + unit + (n === 1 ? "" : "s"); }
  function fromNow(until) {
    var d = until - (Date.now() + skew);
    if (d <= 0) { return "due now"; }
    if (d < 60000) { return "in less than a minute"; }
    if (d < 48 * 3600000) {
      var m = Math.floor(d / 60000), parts = [];
      if (m >= 60) { parts.push(plural(Math.floor(m / 60), "hour")); }
      if (m % 60 > 0) { parts.push(plural(m % 60, "minute")); }
      return "in " + parts.join(" ");
    }
    return "in " + plural(Math.floor(d / 86400000), "day");
  }
  var next = Infinity;
  counts.forEach(function (c) {
    var until = Date.parse(c.getAttribute("data-until"));
    if (until > Date.now() + skew) { next = Math.min(next, until); }
  });
  if (counts.length) {
    setInterval(function () {
      counts.forEach(function (c) { c.textContent = fromNow(Date.parse(c.getAttribute("data-until"))); });
    }, 1000);
  }
  // A browser's timer holds at most about 24.8 days, and fires at once
  // past that: a count further off is asked about again in a day, when
  // the page, drawn anew, waits again.
  if (!busy && next !== Infinity) { setTimeout(poll, Math.min(next - (Date.now() + skew) + 1000, 86400000)); }
  // Once the rotate form is sent, its button is disabled, so that a
  // double-click posts it once; without the script, the answer to the
  // second click says the rotation is the customer's own. A page the
  // browser shows again on "Back" gets the button as it was drawn.
  var rotate = document.getElementById("rotate");
  if (rotate && rotate.form) {
    var drawn = rotate.disabled;
    rotate.form.addEventListener("submit", function () { rotate.disabled = true; });
    window.addEventListener("pageshow", function (e) { if (e.persisted) { rotate.disabled = drawn; } });
  }
})();
