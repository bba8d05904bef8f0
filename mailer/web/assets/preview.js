// Live reload for the preview pages. The page asks the server for a fingerprint of the files it
// depends on (the issue, the layouts, mailer.yaml, the images) every few hundred milliseconds;
// when it changes, the page fetches itself again and swaps in the parts marked [data-live]. The
// frames are reloaded in place and keep their scroll position, so the editor stays where they are.
(() => {
  "use strict";
  const body = document.body;
  const versionUrl = body.dataset.versionUrl;
  const pollMs = Number(body.dataset.pollMs) || 400;
  const live = document.getElementById("live");
  if (!versionUrl) return;

  function setLive(state, text) {
    if (!live) return;
    live.dataset.state = state;
    live.querySelector(".live-text").textContent = text;
  }

  function reloadFrame(frame, src) {
    let x = 0;
    let y = 0;
    try {
      x = frame.contentWindow.scrollX;
      y = frame.contentWindow.scrollY;
    } catch (error) { /* not loaded yet */ }
    frame.addEventListener("load", () => {
      try { frame.contentWindow.scrollTo(x, y); } catch (error) { /* navigated away */ }
    }, { once: true });
    frame.setAttribute("src", src);
  }

  function frameIds(root) {
    return [...root.querySelectorAll("iframe[data-frame]")].map((frame) => frame.id).join(" ");
  }

  async function refresh() {
    const response = await fetch(location.href, { cache: "no-store" });
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    document.title = fresh.title;
    body.className = fresh.body.className;
    body.dataset.version = fresh.body.dataset.version;
    // Frames: reload only the ones whose address changed; rebuild the set if it changed.
    for (const region of document.querySelectorAll("[data-frames]")) {
      const next = fresh.getElementById(region.id);
      if (!next) continue;
      region.className = next.className;
      if (frameIds(region) !== frameIds(next)) {
        region.innerHTML = next.innerHTML;
        continue;
      }
      for (const frame of region.querySelectorAll("iframe[data-frame]")) {
        const src = next.querySelector(`#${CSS.escape(frame.id)}`).getAttribute("src");
        if (src !== frame.getAttribute("src")) reloadFrame(frame, src);
      }
    }
    for (const region of document.querySelectorAll("[data-live]")) {
      const next = fresh.getElementById(region.id);
      if (!next) continue;
      region.className = next.className;
      if (region.innerHTML !== next.innerHTML) region.innerHTML = next.innerHTML;
    }
  }

  async function poll() {
    try {
      const response = await fetch(versionUrl, { cache: "no-store" });
      if (response.status === 404) {
        location.reload();  // the issue file was removed or renamed: show the server's answer
        return;
      } else if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      } else {
        const { version } = await response.json();
        setLive("on", "Live");
        if (version !== body.dataset.version) await refresh();
      }
    } catch (error) {
      setLive("off", "Disconnected: run mailer preview again");
    }
    setTimeout(poll, pollMs);
  }

  setTimeout(poll, pollMs);
})();
