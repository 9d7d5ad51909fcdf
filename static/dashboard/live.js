// Live channel state pushed by /ws/dashboard/ (dashboard/realtime.py).
(function () {
  const table = document.getElementById("channels");
  if (!table) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  function connect() {
    const ws = new WebSocket(`${scheme}://${location.host}/ws/dashboard/`);
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type !== "channels") return;
      for (const ch of msg.channels) {
        const tr = table.querySelector(`tr[data-channel-id="${ch.id}"]`);
        if (!tr) { if (!msg.partial) location.reload(); continue; }
        tr.querySelector(".state").innerHTML = ch.running ? '<span class="running">running</span>' : "idle";
        tr.querySelector(".power").textContent = ch.live_power_w ?? "—";
        tr.querySelector(".lastrow").textContent = ch.last_row_at ? `${ch.last_row_at} · ${ch.last_row_power_w} W · ${ch.last_row_reason}` : "—";
      }
    };
    ws.onclose = () => setTimeout(connect, 3000);
  }
  connect();
})();
