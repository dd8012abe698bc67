// A small stand-in for Web Workers on pages opened from file://.
//
// Browsers refuse `new Worker(url)` for file:// URLs, and the theme's search runs in a
// worker. When the page is a file, this script replaces `window.Worker` with a class that
// runs the worker script in a hidden iframe instead. The iframe and the page talk over a
// MessageChannel: the page keeps one port, the iframe receives the other and maps the
// worker API onto it (`postMessage` out, "message" events in). Over http(s) it does
// nothing, so served sites keep real workers.
//
// Written for dlnotes (an equivalent of the "iframe-worker" shim that the theme's
// offline plugin would otherwise load from a CDN); no third-party code.
(function () {
  "use strict";
  if (location.protocol !== "file:" || window.__dlnotesIframeWorker) return;
  window.__dlnotesIframeWorker = true;

  // Runs inside the iframe: wait for the port, load the worker script, then start
  // delivering messages (a MessagePort queues them until `onmessage` is set).
  var BOOTSTRAP = [
    "addEventListener('message', function init(event) {",
    "  if (!event.data || event.data.type !== 'iframe-worker:init') return;",
    "  removeEventListener('message', init);",
    "  var port = event.ports[0];",
    "  self.postMessage = function (data) { port.postMessage(data); };",
    "  self.importScripts = function () {",
    "    throw new Error('importScripts is not available in the file:// worker shim');",
    "  };",
    "  var script = document.createElement('script');",
    "  script.src = event.data.url;",
    "  script.onload = function () {",
    "    port.onmessage = function (message) {",
    "      var copy = new MessageEvent('message', { data: message.data });",
    "      if (typeof self.onmessage === 'function') self.onmessage(copy);",
    "      dispatchEvent(copy);",
    "    };",
    "  };",
    "  script.onerror = function () { port.postMessage({ __iframeWorkerError: event.data.url }); };",
    "  document.head.appendChild(script);",
    "});",
  ].join("\n");

  function IframeWorker(url) {
    var target = document.createDocumentFragment();  // any EventTarget would do
    var channel = new MessageChannel();
    var frame = document.createElement("iframe");
    var self = this;

    this.onmessage = null;
    this.onerror = null;
    this.addEventListener = target.addEventListener.bind(target);
    this.removeEventListener = target.removeEventListener.bind(target);
    this.dispatchEvent = target.dispatchEvent.bind(target);

    channel.port1.onmessage = function (message) {
      var data = message.data;
      if (data && data.__iframeWorkerError) {
        var failure = new ErrorEvent("error", { message: "cannot load worker " + data.__iframeWorkerError });
        if (typeof self.onerror === "function") self.onerror(failure);
        self.dispatchEvent(failure);
        return;
      }
      var event = new MessageEvent("message", { data: data });
      if (typeof self.onmessage === "function") self.onmessage(event);
      self.dispatchEvent(event);
    };
    this.postMessage = function (data) { channel.port1.postMessage(data); };
    this.terminate = function () { channel.port1.close(); frame.remove(); };

    frame.hidden = true;
    frame.setAttribute("aria-hidden", "true");
    frame.srcdoc = "<!doctype html><script>" + BOOTSTRAP + "<\/script>";
    frame.addEventListener("load", function () {
      frame.contentWindow.postMessage(
        { type: "iframe-worker:init", url: new URL(url, location.href).href },
        "*",
        [channel.port2]
      );
    }, { once: true });
    (document.body || document.documentElement).appendChild(frame);
  }

  window.Worker = IframeWorker;
})();
