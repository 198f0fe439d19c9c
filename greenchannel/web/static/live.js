/* Live parts of a page: every [data-live] element is refreshed by short polling its URL (a
   server-rendered fragment, so every word is already translated), and every timer ticks.
   Without JavaScript the page is complete as served; forms post to the server either way. */
(function () {
  "use strict";
  // A test may ask for a shorter period before the page loads (window.greenchannelPollMs).
  var POLL_MS = window.greenchannelPollMs || 2500;
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

  // The board's count of cases needing a human travels with its fragment (data-attention):
  // the page title and the favicon carry it, and an optional beep says it rose.
  var icon = document.querySelector('link[rel="icon"]');
  var plainIcon = icon ? icon.getAttribute("href") : null;
  var SOUND_KEY = "greenchannel.board.sound";
  var shown = null;
  var audio = null;

  function soundOn() {
    try { return window.localStorage.getItem(SOUND_KEY) === "on"; } catch (e) { return false; }
  }

  function beep() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    try {
      audio = audio || new Context();
      if (audio.state === "suspended") audio.resume();
      var t = audio.currentTime, osc = audio.createOscillator(), gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.setValueAtTime(880, t);
      osc.frequency.setValueAtTime(660, t + 0.18);
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.3, t + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.4);
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start(t);
      osc.stop(t + 0.42);
    } catch (e) { /* no sound is better than a broken page */ }
  }

  function badge(count) {
    var label = count > 9 ? "9+" : String(count);
    var svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">' +
      '<rect width="32" height="32" rx="6" fill="#0b6e4f"/>' +
      '<path d="M14 6h4v8h8v4h-8v8h-4v-8H6v-4h8z" fill="#fff"/>' +
      '<circle cx="21" cy="11" r="11" fill="#c62828" stroke="#fff" stroke-width="1.5"/>' +
      '<text x="21" y="16" font-family="Arial,Helvetica,sans-serif" font-weight="bold" ' +
      'font-size="' + (label.length > 1 ? 12 : 15) + '" text-anchor="middle" fill="#fff">' +
      label + "</text></svg>";
    return "data:image/svg+xml," + encodeURIComponent(svg);
  }

  function showAttention(count) {
    if (count === null || isNaN(count)) return;
    var title = document.title.replace(/^\(\d+\) /, "");
    document.title = count > 0 ? "(" + count + ") " + title : title;
    if (icon && plainIcon) icon.setAttribute("href", count > 0 ? badge(count) : plainIcon);
    if (shown !== null && count > shown && soundOn()) beep();
    shown = count;
  }

  function attentionIn(html) {
    var match = /data-attention="(\d+)"/.exec(html);
    return match ? parseInt(match[1], 10) : null;
  }

  function soundToggle() {
    var box = document.getElementById("attention-sound");
    var row = document.getElementById("attention-sound-row");
    if (!box) return;
    if (row) row.hidden = false; // only with JavaScript: the page works without it
    box.checked = soundOn();
    box.addEventListener("change", function () {
      try { window.localStorage.setItem(SOUND_KEY, box.checked ? "on" : "off"); } catch (e) { /* private mode */ }
      if (box.checked) beep(); // a click unlocks audio, and says what it will sound like
    });
  }

  // Someone is typing or choosing inside the region: do not pull the form from under them.
  function busy(region) {
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(active.tagName)) {
      return true;
    }
    return region.querySelector("details[open]:not(.timeline)") !== null;
  }

  // Asks `run(done)` again `period` ms after each answer while the tab is seen, four times
  // slower while it is hidden (a phone in a pocket, a board behind another window), at once
  // when it is seen again; each wait is drawn ±20% so that pages opened together drift apart.
  // Returns a function that stops it for good.
  var HIDDEN_SLOWER = 4;
  function every(period, run) {
    var timer = null;
    var running = false;
    var stopped = false;
    function wait() {
      var base = period * (document.hidden ? HIDDEN_SLOWER : 1);
      return base * (0.8 + Math.random() * 0.4);
    }
    function fire() {
      timer = null;
      if (stopped) return;
      running = true;
      run(function () {
        running = false;
        if (!stopped) timer = window.setTimeout(fire, wait());
      });
    }
    document.addEventListener("visibilitychange", function () {
      if (stopped || document.hidden || running) return;
      if (timer !== null) window.clearTimeout(timer);
      fire();
    });
    timer = window.setTimeout(fire, wait());
    return function stop() {
      stopped = true;
      if (timer !== null) window.clearTimeout(timer);
      timer = null;
    };
  }
  window.greenchannelEvery = every; // the board's map polls on the same schedule

  // Each region asks with the tag of what it shows (If-None-Match): the server answers 304,
  // with no body, while nothing in it has changed. The tag lives here, in memory: the answers
  // are no-store, so a shared computer's cache keeps no copy of a case.
  function poll(region) {
    var url = region.getAttribute("data-live");
    // A region may ask less often (data-live-every, ms): a case page on a phone's paid data.
    var period = window.greenchannelPollMs || parseInt(region.getAttribute("data-live-every"), 10) || POLL_MS;
    var last = null;
    var tag = null;
    var offline = document.getElementById("offline");
    var stop = every(period, function (done) {
      var headers = { "X-Requested-With": "fetch" };
      if (tag) headers["If-None-Match"] = tag;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: headers })
        .then(function (response) {
          if (response.status === 401 || response.status === 403 || response.redirected) {
            window.location.reload(); // logged out or role changed: the server decides
            return null;
          }
          if (response.status === 304) return null; // nothing new
          if (!response.ok) throw new Error(String(response.status));
          var etag = response.headers.get("ETag");
          return response.text().then(function (html) { return { html: html, etag: etag }; });
        })
        .then(function (answer) {
          if (offline) offline.hidden = true;
          if (answer === null) return;
          var html = answer.html;
          showAttention(attentionIn(html)); // even while the region is left alone (busy)
          if (html === last) {
            tag = answer.etag;
            return;
          }
          // Someone is busy in the region: keep the old tag, so the next poll brings it again.
          if (busy(region)) return;
          var openTimeline = region.querySelector("details.timeline");
          var keepOpen = openTimeline ? openTimeline.open : null;
          region.innerHTML = html;
          last = html;
          tag = answer.etag;
          var timeline = region.querySelector("details.timeline");
          if (timeline && keepOpen !== null) timeline.open = keepOpen;
          syncClock(region);
          tick();
          region.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
          // A closed case changes no more: stop asking.
          if (region.querySelector("[data-final]")) {
            region.setAttribute("data-stopped", "1");
            stop();
          }
        })
        .catch(function () {
          if (offline) {
            offline.textContent = body.getAttribute("data-t-offline");
            offline.hidden = false;
          }
        })
        .then(done, done);
    });
    if (region.querySelector("[data-final]")) {
      region.setAttribute("data-stopped", "1"); // served closed: nothing will change
      stop();
    }
  }

  // Logging out on a shared computer leaves no half-typed case behind (see draft.js).
  var logout = document.querySelector("form[data-logout]");
  if (logout) {
    logout.addEventListener("submit", function () {
      try { window.sessionStorage.clear(); } catch (e) { /* storage off */ }
    });
  }

  syncClock(body);
  var first = document.querySelector("[data-attention]");
  if (first) showAttention(parseInt(first.getAttribute("data-attention"), 10));
  soundToggle();
  tick();
  window.setInterval(tick, 1000);
  var regions = document.querySelectorAll("[data-live]");
  for (var i = 0; i < regions.length; i++) poll(regions[i]);
})();
