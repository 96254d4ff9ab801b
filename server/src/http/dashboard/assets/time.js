// Keeps the dashboard's "… ago" times current while a page stays open, and shows each
// exact time in the reader's own time zone on hover.
"use strict";
(function () {
  function ago(seconds) {
    if (seconds < 0) return "just now";
    if (seconds < 120) return Math.floor(seconds) + " s ago";
    if (seconds < 7200) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }
  function refresh() {
    const now = Date.now();
    for (const el of document.querySelectorAll("time[datetime]")) {
      const at = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(at)) {
        el.textContent = ago((now - at) / 1000);
        el.title = new Date(at).toLocaleString();
      }
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    refresh();
    setInterval(refresh, 30000);
  });
})();
