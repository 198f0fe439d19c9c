/* Live parts of a page: every [data-live] element is refreshed by short polling its URL (a
   server-rendered fragment, so every word is already translated), and every timer ticks.
   Without JavaScript the page is complete as served; forms post to the server either way. */
(function () {
  "use strict";
  var POLL_MS = 2500;
  var body = document.body;
  var offset = 0; // server clock minus browser clock, in ms (the server's clock is the truth)

  function syncClock(root) {
    var el = root.querySelector("[data-now]") || (root.hasAttribute("data-now") ? root : null);
    if (el) {
      var server = Date.parse(el.getAttribute("data-now"));
      if (!isNaN(server)) offset = server - Date.now();
    }
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
  }

  function tick() {
    var now = Date.now() + offset;
    var timers = document.querySelectorAll(".timer");
    for (var i = 0; i < timers.length; i++) {
      var t = timers[i];
      if (t.hasAttribute("data-since")) {
        t.textContent = clock((now - Date.parse(t.getAttribute("data-since"))) / 1000);
      } else if (t.hasAttribute("data-until")) {
        var left = (Date.parse(t.getAttribute("data-until")) - now) / 1000;
        if (left > 0) {
          t.textContent = clock(left);
          t.classList.remove("over");
          t.classList.toggle("soon", left < 60);
        } else {
          t.textContent = body.getAttribute("data-t-up") + " +" + clock(-left);
          t.classList.add("over");
        }
      }
    }
  }

  // Someone is typing or choosing inside the region: do not pull the form from under them.
  function busy(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(active.tagName)) {
      return true;
    }
    return region.querySelector("details[open]:not(.timeline)") !== null;
  }

  function poll(region) {
    var url = region.getAttribute("data-live");
    var last = null;
    var offline = document.getElementById("offline");
    function once() {
      if (document.hidden) return schedule();
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          if (response.status === 401 || response.status === 403 || response.redirected) {
            window.location.reload(); // logged out or role changed: the server decides
            return null;
          }
          if (!response.ok) throw new Error(String(response.status));
          return response.text();
        })
        .then(function (html) {
          if (offline) offline.hidden = true;
          if (html === null) return;
          if (html !== last && !busy(region)) {
            var openTimeline = region.querySelector("details.timeline");
            var keepOpen = openTimeline ? openTimeline.open : null;
            region.innerHTML = html;
            last = html;
            var timeline = region.querySelector("details.timeline");
            if (timeline && keepOpen !== null) timeline.open = keepOpen;
            syncClock(region);
            tick();
            region.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
          }
        })
        .catch(function () {
          if (offline) {
            offline.textContent = body.getAttribute("data-t-offline");
            offline.hidden = false;
          }
        })
        .then(schedule, schedule);
    }
    function schedule() { window.setTimeout(once, POLL_MS); }
    schedule();
  }

  syncClock(body);
  tick();
  window.setInterval(tick, 1000);
  var regions = document.querySelectorAll("[data-live]");
  for (var i = 0; i < regions.length; i++) poll(regions[i]);
})();
