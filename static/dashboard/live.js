// Overview: live power and running state from /ws/dashboard/ (dashboard/consumers.py),
// elapsed running time and device online/offline ticking every second, and the
// day's figures refreshed from the server when runs start or stop.
(function () {
  "use strict";
  const SM = window.SM;
  const container = document.getElementById("overview-cards");
  const status = document.getElementById("livestatus");
  if (!container || !SM) return;
  const latest = {}; // channel id -> latest state seen (from any message)
  const seen = {}; // device pk -> Date of last sample or last_seen
  let refreshTimer = null;
  let lastRefresh = 0;

  function setStatus(state) {
    if (!status) return;
    status.dataset.state = state;
    status.textContent = SM.t(state === "live" ? "live" : state === "lost" ? "reconnecting" : "connecting");
  }

  function card(channelId) {
    return container.querySelector(`.card[data-channel-id="${channelId}"]`);
  }

  function applyState(item) {
    const ts = SM.parseDate(item.ts);
    const known = latest[item.channel];
    if (known && known.tsDate && ts && ts < known.tsDate) return; // older than what is shown
    const el = card(item.channel);
    const wasRunning = known ? known.running : el ? el.classList.contains("is-running") : item.running;
    const runningChanged = wasRunning !== item.running;
    latest[item.channel] = Object.assign({}, known, item, { tsDate: ts });
    if (item.running && !item.running_since && known && known.running_since) latest[item.channel].running_since = known.running_since;
    if (ts && item.device !== undefined && (!seen[item.device] || seen[item.device] < ts)) seen[item.device] = ts;
    render(item.channel);
    if (runningChanged) scheduleRefresh(500);
  }

  function render(channelId) {
    const el = card(channelId);
    const state = latest[channelId];
    if (!el || !state) return;
    const power = el.querySelector("[data-power]");
    if (power) {
      power.firstChild.nodeValue = SM.number(state.p, 0);
      power.classList.remove("flash");
      void power.offsetWidth; // restart the highlight
      power.classList.add("flash");
    }
    const electric = el.querySelector("[data-electric]");
    if (electric) {
      const parts = [];
      if (state.i !== null && state.i !== undefined) parts.push(`${SM.number(state.i, 2)} A`);
      if (state.v !== null && state.v !== undefined) parts.push(`${SM.number(state.v, 0)} V`);
      electric.textContent = parts.join(" · ");
    }
    const pill = el.querySelector("[data-state]");
    if (pill) {
      pill.className = `pill ${state.running ? "pill-running" : "pill-stopped"}`;
      pill.textContent = SM.t(state.running ? "running" : "stopped");
    }
    if (el.dataset.runningSince !== undefined) {
      // Pumps only: a meter's "running" just means it measures a load.
      el.classList.toggle("is-running", !!state.running);
      if (state.running && state.running_since) el.dataset.runningSince = state.running_since;
      if (!state.running) el.dataset.runningSince = "";
    }
    if (state.ts) el.dataset.ts = state.ts;
    tickCard(el);
  }

  function tickCard(el) {
    const foot = el.querySelector("[data-foot]");
    const since = SM.parseDate(el.dataset.runningSince);
    const ts = SM.parseDate(el.dataset.ts);
    const parts = [];
    if (since) parts.push(`${SM.t("running_since", { since: SM.moment(since) })} (${SM.duration((Date.now() - since) / 1000)})`);
    parts.push(ts ? SM.t("last_reading", { when: SM.moment(ts) }) : SM.t("no_reading"));
    if (foot) foot.textContent = parts.join(" · ");
    const runtime = el.querySelector("[data-runtime]");
    if (runtime) {
      // Today's runtime: closed cycles plus the running one's time since midnight.
      const closed = parseFloat(runtime.dataset.closedS || "0");
      const dayStart = SM.parseDate(container.dataset.dayStart);
      const from = since && dayStart && since < dayStart ? dayStart : since;
      const running = from ? Math.max(0, (Date.now() - from) / 1000) : 0;
      runtime.textContent = SM.duration(closed + running);
    }
  }

  function tickDevices() {
    for (const section of container.querySelectorAll(".device")) {
      const pk = section.dataset.deviceId;
      const metaSeen = section.querySelector("[data-device-seen]");
      let last = seen[pk] || SM.parseDate(metaSeen && metaSeen.dataset.deviceSeen);
      if (last && (!seen[pk] || seen[pk] < last)) seen[pk] = last;
      const online = last && (Date.now() - last) / 1000 <= SM.config.offlineAfterS;
      const pill = section.querySelector("[data-device-online]");
      if (pill) {
        pill.className = `pill ${online ? "pill-online" : "pill-offline"}`;
        pill.textContent = SM.t(online ? "online" : "offline");
      }
      if (metaSeen) metaSeen.textContent = last ? SM.t("last_seen", { when: SM.moment(last) }) : SM.t("never_seen");
    }
  }

  function tick() {
    for (const el of container.querySelectorAll(".card")) tickCard(el);
    tickDevices();
  }

  function scheduleRefresh(delay) {
    if (refreshTimer) return;
    // At most one refresh every 3 s, whatever the burst of runs starting and stopping.
    const wait = Math.max(delay, lastRefresh + 3000 - Date.now());
    refreshTimer = setTimeout(refresh, wait);
  }

  async function refresh() {
    refreshTimer = null;
    lastRefresh = Date.now();
    try {
      const response = await fetch(container.dataset.cardsUrl, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
      if (response.redirected) {
        location.reload(); // the session ended: the page shows the login form
        return;
      }
      if (!response.ok) return; // keep what is shown; the next change tries again
      container.innerHTML = await response.text();
      for (const id of Object.keys(latest)) render(id);
      tick();
    } catch (e) {
      // Offline for a moment: the live values keep coming when the socket is back.
    }
  }

  function onMessage(event) {
    const msg = JSON.parse(event.data);
    if (msg.type === "states") {
      for (const item of msg.channels) applyState(item);
      for (const d of msg.devices || []) {
        const when = SM.parseDate(d.last_seen);
        if (when && (!seen[d.device] || seen[d.device] < when)) seen[d.device] = when;
      }
      if (msg.channels.some((item) => !card(item.channel))) scheduleRefresh(0); // a new channel appeared
      tickDevices();
    } else if (msg.type === "live") {
      for (const item of msg.samples) applyState(item);
      tickDevices();
    } else if (msg.type === "changed") {
      scheduleRefresh(1000);
    }
  }

  let retry = 1000;
  let fallback = null;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/dashboard/`);
    ws.onopen = () => {
      setStatus("live");
      retry = 1000;
      clearInterval(fallback);
      fallback = null;
    };
    ws.onmessage = onMessage;
    ws.onclose = () => {
      setStatus("lost");
      // No socket (a proxy without WebSocket, the server restarting): the figures
      // are still refreshed from the server every 30 s until it is back.
      if (!fallback) fallback = setInterval(() => scheduleRefresh(0), 30000);
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  setStatus("connecting");
  tick();
  setInterval(tick, 1000);
  connect();
})();
