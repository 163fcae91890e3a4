/*
 * recsvc storefront snippet: recommendation widgets for a shop's pages. No dependencies, no inline
 * script (works under a strict Content-Security-Policy that allows this file and the API's origin in
 * connect-src).
 *
 *   <script src="https://RECSVC/static/storefront/recsvc.js" data-key="rpk_..." data-api="https://RECSVC"
 *           data-customer="(optional: the logged-in customer's id)" defer></script>
 *   <div data-recsvc-widget data-k="4"></div>
 *
 * A widget's attributes: data-k (how many, default 4), data-product (a product id: products similar to
 * it), data-source="popular" (the most popular products), data-link="https://shop.example/p/{id}" (each
 * item links there; without it an item links to its `url` when the answer has one, else is plain text),
 * data-title (a heading).
 *
 * Anonymous visitors get a session id kept in localStorage; their events are sent as customer
 * "anon-<session id>". Each shown item sends an `impression` event, a click a `click` event, both with
 * the answer's recommendation_id (attribution) and an event_id of their own (a retry never stores twice).
 */
(function () {
  "use strict";

  var script = document.currentScript || document.querySelector("script[data-key][src*='recsvc']");
  if (!script) return;
  var KEY = script.getAttribute("data-key") || "";
  var API = (script.getAttribute("data-api") || "").replace(/\/+$/, "");
  var CUSTOMER = script.getAttribute("data-customer") || "";
  var SESSION_KEY = "recsvc_session";

  function randomId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // a version 4 UUID
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function sessionId() {
    var id = null;
    try {
      id = window.localStorage.getItem(SESSION_KEY);
      if (!id) {
        id = randomId();
        window.localStorage.setItem(SESSION_KEY, id);
      }
    } catch (e) {
      // Storage refused (privacy mode): one session per page view.
      id = id || randomId();
    }
    return id;
  }

  var SESSION = sessionId();
  var EVENT_CUSTOMER = CUSTOMER || "anon-" + SESSION;

  function headers(json) {
    var h = { Authorization: "Bearer " + KEY };
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  function sendEvent(type, productId, recommendationId) {
    var body = {
      type: type,
      customer_id: EVENT_CUSTOMER,
      product_id: productId,
      session_id: SESSION,
      recommendation_id: recommendationId,
      event_id: randomId()
    };
    // keepalive: a click that navigates away still delivers its event.
    return fetch(API + "/v1/events", {
      method: "POST", headers: headers(true), body: JSON.stringify(body), keepalive: true, mode: "cors",
      credentials: "omit"
    }).catch(function (err) { console.warn("recsvc: event not sent", err); });
  }

  function answerUrl(widget) {
    var k = parseInt(widget.getAttribute("data-k") || "4", 10);
    var params = new URLSearchParams();
    params.set("k", String(k > 0 && k <= 100 ? k : 4));
    var product = widget.getAttribute("data-product");
    if (product) return API + "/v1/products/" + encodeURIComponent(product) + "/similar?" + params;
    if (widget.getAttribute("data-source") === "popular") return API + "/v1/popular?" + params;
    if (CUSTOMER) params.set("customer_id", CUSTOMER);
    params.set("session_id", SESSION);
    return API + "/v1/recommendations?" + params;
  }

  function itemHref(widget, item) {
    var template = widget.getAttribute("data-link");
    if (template) return template.split("{id}").join(encodeURIComponent(item.id));
    return typeof item.url === "string" && /^https?:\/\//.test(item.url) ? item.url : null;
  }

  function render(widget, answer) {
    var items = answer.items || [];
    widget.textContent = "";
    if (!items.length) return;
    var heading = widget.getAttribute("data-title");
    if (heading) {
      var h = document.createElement("h3");
      h.className = "recsvc-title";
      h.textContent = heading;
      widget.appendChild(h);
    }
    var list = document.createElement("ul");
    list.className = "recsvc-items";
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.className = "recsvc-item";
      var href = itemHref(widget, item);
      var el = document.createElement(href ? "a" : "span");
      if (href) el.href = href;
      el.className = "recsvc-link";
      el.setAttribute("data-recsvc-product", item.id);
      el.textContent = item.title || item.id;
      el.addEventListener("click", function () { sendEvent("click", item.id, answer.recommendation_id); });
      li.appendChild(el);
      list.appendChild(li);
    });
    widget.appendChild(list);
    widget.setAttribute("data-recsvc-recommendation-id", answer.recommendation_id || "");
    items.forEach(function (item) { sendEvent("impression", item.id, answer.recommendation_id); });
  }

  function load(widget) {
    return fetch(answerUrl(widget), { headers: headers(false), mode: "cors", credentials: "omit" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (answer) { render(widget, answer); })
      .catch(function (err) {
        widget.setAttribute("data-recsvc-error", String(err && err.message || err));
        console.warn("recsvc: no recommendations", err);
      });
  }

  function start() {
    if (!KEY || !API) {
      console.warn("recsvc: the script tag needs data-key and data-api");
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll("[data-recsvc-widget]"), load);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
