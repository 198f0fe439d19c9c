/* The coordinator's map: roads (from /api/v1/roads/geometry, drawn as lines: no tile server is
   needed), facilities coloured by status, each active case origin → destination, closures.
   Data comes from the project's own JSON API with the session cookie (GET only). */
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) return;
  var L = window.L;
  var t = function (key) { return el.getAttribute("data-t-" + key) || key; };
  // Leaflet puts a tooltip's string in as HTML: names and reasons typed by people are text.
  var ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"']/g, function (c) { return ESCAPES[c]; });
  }
  var map = L.map(el, { preferCanvas: false, zoomControl: true, attributionControl: false });
  map.setView([29.6, 106.5], 9);
  var roads = L.layerGroup().addTo(map);
  var facilityLayer = L.layerGroup().addTo(map);
  var caseLayer = L.layerGroup().addTo(map);
  var closureLayer = L.layerGroup().addTo(map);
  var picked = null;
  var facilities = {};
  var fitted = false;

  // The lists are asked with the tag of the copy held here (If-None-Match): a 304 while
  // nothing changed, and the map is not drawn again.
  var tags = {};
  var held = {};
  function getJSON(url) {
    var headers = { Accept: "application/json" };
    if (tags[url]) headers["If-None-Match"] = tags[url];
    return fetch(url, { credentials: "same-origin", cache: "no-store", headers: headers })
      .then(function (r) {
        if (r.status === 304) return { data: held[url], changed: false };
        if (!r.ok) throw new Error(String(r.status));
        var etag = r.headers.get("ETag");
        return r.json().then(function (data) {
          tags[url] = etag;
          held[url] = data;
          return { data: data, changed: true };
        });
      });
  }

  var COLOURS = { normal: "#1b7f3b", advisory: "#b35c00", closed: "#b00020", stale: "#6b6b6b" };

  function drawFacilities(list) {
    facilityLayer.clearLayers();
    facilities = {};
    var bounds = [];
    list.forEach(function (f) {
      facilities[f.code] = f;
      bounds.push([f.lat, f.lon]);
      var receiving = f.maternal_level >= "M2" || f.neonatal_level >= "N2";
      var state = f.diversion !== "normal" ? f.diversion : (receiving && f.stale ? "stale" : "normal");
      var marker = L.circleMarker([f.lat, f.lon], {
        radius: receiving ? 8 : 4,
        color: COLOURS[state],
        weight: receiving ? 3 : 1,
        fillColor: state === "stale" ? "#ffffff" : COLOURS[state],
        fillOpacity: receiving ? 0.85 : 0.5,
        dashArray: state === "advisory" ? "3 3" : null
      });
      var words = state === "stale" ? t("stale") : t(f.diversion);
      marker.bindTooltip(esc(f.name + " (" + f.maternal_level + "/" + f.neonatal_level + ") · " + words));
      marker.addTo(facilityLayer);
    });
    if (!fitted && bounds.length) {
      map.fitBounds(bounds, { padding: [20, 20] });
      fitted = true;
    }
  }

  function drawCases(list) {
    caseLayer.clearLayers();
    list.forEach(function (r) {
      var from = facilities[r.origin_facility];
      if (!from) return;
      var targets = [];
      if (r.destination) targets.push({ code: r.destination, dashed: false });
      else r.offers.forEach(function (o) {
        if (o.status === "pending") targets.push({ code: o.facility, dashed: true });
      });
      var colour = r.urgency === "critical" ? "#b00020" : r.urgency === "urgent" ? "#b35c00" : "#1d4e89";
      L.circleMarker([from.lat, from.lon], { radius: 6, color: colour, weight: 3, fillOpacity: 0 })
        .bindTooltip(esc(r.code)).addTo(caseLayer);
      targets.forEach(function (target) {
        var to = facilities[target.code];
        if (!to) return;
        L.polyline([[from.lat, from.lon], [to.lat, to.lon]], {
          color: colour, weight: 4, opacity: 0.9, dashArray: target.dashed ? "8 6" : null
        }).bindTooltip(esc(r.code + " → " + to.name + (target.dashed ? " (" + t("pending") + ")" : "")))
          .addTo(caseLayer);
      });
    });
  }

  function drawClosures(list) {
    closureLayer.clearLayers();
    list.forEach(function (c) {
      L.circle([c.lat, c.lon], {
        radius: c.radius_m, color: "#b00020", weight: 2, fillOpacity: 0.15,
        dashArray: c.kind === "slow" ? "4 4" : null
      }).bindTooltip(esc((c.kind === "slow" ? "≈ " : "✖ ") + (c.reason || ""))).addTo(closureLayer);
    });
  }

  function refresh() {
    var placesMoved = false;
    return getJSON(el.getAttribute("data-facilities"))
      .then(function (answer) {
        placesMoved = answer.changed;
        if (answer.changed) drawFacilities(answer.data.facilities);
      })
      .then(function () { return getJSON(el.getAttribute("data-referrals")); })
      .then(function (answer) {
        if (answer.changed || placesMoved) drawCases(answer.data.referrals);
      })
      .then(function () { return getJSON(el.getAttribute("data-closures")); })
      .then(function (answer) { if (answer.changed) drawClosures(answer.data.closures); })
      .catch(function () { /* the lists beside the map say the same; try again next time */ });
  }

  // The geometry's URL carries the network's version: the browser keeps it for good.
  var asJSON = { credentials: "same-origin", headers: { Accept: "application/json" } };
  fetch(el.getAttribute("data-geometry"), asJSON)
    .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
    .then(function (data) {
      data.polylines.forEach(function (line) {
        L.polyline(line, { color: "#8a8f98", weight: 2, opacity: 0.8, interactive: false }).addTo(roads);
      });
      if (!fitted && data.polylines.length) {
        map.fitBounds(L.polyline(data.polylines).getBounds(), { padding: [10, 10] });
      }
    })
    .catch(function () {});

  map.on("click", function (event) {
    var lat = document.getElementById("closure-lat");
    var lon = document.getElementById("closure-lon");
    if (!lat || !lon) return;
    lat.value = event.latlng.lat.toFixed(5);
    lon.value = event.latlng.lng.toFixed(5);
    if (picked) picked.remove();
    var radius = parseFloat(document.getElementById("closure-radius").value) || 500;
    picked = L.circle(event.latlng, { radius: radius, color: "#1d4e89", weight: 2, fillOpacity: 0.1 })
      .bindTooltip(esc(t("picked"))).addTo(map);
  });

  // The board's live fragment is tagged with everything the map draws (the cases, the
  // registry with its places and live status, the closures): the map asks again when that
  // fragment has changed, and otherwise only every 30 s in case (live.js's schedule: slower in
  // a hidden tab).
  var MAP_MS = window.greenchannelPollMs ? window.greenchannelPollMs * 10 : 30000;
  var asking = false;
  function again() {
    if (asking) return Promise.resolve();
    asking = true;
    return refresh().then(function () { asking = false; });
  }
  document.addEventListener("live:updated", function () { again(); });
  again().then(function () {
    if (window.greenchannelEvery) {
      window.greenchannelEvery(MAP_MS, function (done) { again().then(done, done); });
    } else {
      window.setInterval(again, MAP_MS);
    }
  });
})();
