"""The Pro 4PM simulator speaks like the real device (§4.4)."""

import json
import random
from pathlib import Path

import pytest
from websockets.asyncio.server import serve

from collector.simulators.pro4pm import SimulatedPro4PM, device_url, run_devices
from collector.simulators.pump import LoadModel, LoadProfile

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "shelly"
FIXTURE = FIXTURES / "aioshelly_pro4pm_SPSW-004PE16EU_fw1.0.3_full.json"
T0 = 1_760_000_000.0  # a fixed epoch: the model is fed explicit times


@pytest.fixture(scope="module")
def real():
    return json.loads(FIXTURE.read_text())


def shape(value):
    """Key names and JSON types, recursively (list items by their first element)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def play(device, seconds, step=1.0):
    """Step the device every `step` s; yield (t, frame) for each partial frame."""
    t = device.now
    for _ in range(int(seconds / step)):
        t += step
        device.step(t)
        yield t, device.notify_status()


def test_switch_status_has_the_real_field_names_and_types(real):
    device = SimulatedPro4PM(seed=1, t0=T0)
    status = device.full_status()
    for n in range(4):
        assert shape(status[f"switch:{n}"]) == shape(real["status"][f"switch:{n}"])


def test_full_status_has_the_real_components(real):
    status = SimulatedPro4PM(seed=1, t0=T0).full_status()
    assert set(status) >= {"sys", "wifi", "ws", "input:0", "switch:3"}
    missing = set(real["status"]) - set(status)
    assert missing <= {"script:1"}  # no script installed on the simulated device
    for component in ("sys", "wifi", "ws"):
        real_shape = shape(real["status"][component])
        ours = shape(status[component])
        assert set(ours) == set(real_shape), component
        assert {k: v for k, v in ours.items() if real_shape[k] != "NoneType"} == {
            k: v for k, v in real_shape.items() if v != "NoneType"
        }


def test_device_info_matches_the_real_get_device_info(real):
    device = SimulatedPro4PM(index=3, seed=1, t0=T0)
    info = device.device_info()
    assert set(info) == set(real["shelly"])
    assert info["model"] == real["shelly"]["model"] and info["app"] == "Pro4PM" and info["gen"] == 2
    assert info["id"] == device.device_id == f"shellypro4pm-{device.mac.lower()}"
    assert len(device.mac) == 12 and int(device.mac, 16) >= 0


def test_rpc_answers_follow_the_device():
    device = SimulatedPro4PM(seed=1, t0=T0)
    ask = {"id": 2, "src": "shelly-monitor", "method": "Shelly.GetStatus"}
    reply = device.answer(ask)
    assert reply["id"] == 2 and reply["src"] == device.device_id and reply["dst"] == "shelly-monitor"
    assert "switch:0" in reply["result"]
    assert device.answer({"id": 1, "src": "s", "method": "NotifyStatus", "params": {"enable": True}})["result"] is None
    assert device.answer({"id": 3, "src": "s", "method": "shelly.getdeviceinfo"})["result"]["id"] == device.device_id
    assert device.answer({"id": 4, "src": "s", "method": "Switch.GetStatus", "params": {"id": 7}})["error"] == {
        "code": -105,
        "message": "Bad id=7",
    }
    assert device.answer({"id": 5, "src": "s", "method": "Foo.Bar"})["error"]["code"] == 404
    assert device.answer({"id": 6, "result": None}) is None  # a response, not a request


def test_partial_frames_carry_only_changed_fields():
    device = SimulatedPro4PM(seed=4, scenario="pumps", t0=T0, start_running=True, run_s=3600)
    device.notify_full_status()
    previous = {f"switch:{n}": device.switch_status(n) for n in range(4)}
    frames = idle_output_frames = 0
    for t, frame in play(device, 120):
        if frame is None:
            continue
        frames += 1
        idle_output = frame["params"].get("switch:3", {})
        idle_output_frames += "apower" in idle_output or "current" in idle_output
        assert frame["method"] == "NotifyStatus"
        assert frame["params"]["ts"] == round(t, 2)
        for key, partial in frame["params"].items():
            if key == "ts":
                continue
            current = device.switch_status(int(key.split(":")[1]))
            assert partial["id"] == current["id"]
            changed = {name for name in current if current[name] != previous[key][name]}
            assert set(partial) - {"id"} == changed
            assert all(partial[name] == current[name] for name in changed)
            previous[key] = current
    assert frames == 120  # a running pump changes power every second
    # The idle output reports temperature and minute counters, never its unchanged 0 W.
    assert idle_output_frames == 0


def test_energy_counter_is_monotonic_and_integrates_reported_power():
    device = SimulatedPro4PM(seed=5, scenario="glitchy", t0=T0)
    integrated = [0.0] * 4
    last_power = [device.switches[n].apower for n in range(4)]
    last_total = [0.0] * 4
    t_prev = T0
    for t, _frame in play(device, 1800, step=0.5):
        for n in range(4):
            integrated[n] += last_power[n] * (t - t_prev) / 3600.0
            total = device.switches[n].energy_wh
            assert total >= last_total[n]
            last_total[n] = total
            last_power[n] = device.switches[n].apower
        t_prev = t
    for n in range(4):
        assert device.switches[n].energy_wh == pytest.approx(integrated[n], rel=1e-9, abs=1e-9)
    assert sum(integrated) > 10  # the pumps did run


def test_by_minute_holds_the_last_minutes_energy_in_mwh():
    device = SimulatedPro4PM(seed=2, scenario="steady", t0=T0 - T0 % 60)
    for _ in play(device, 125):
        pass
    aenergy = device.switch_status(0)["aenergy"]
    assert aenergy["minute_ts"] == int(T0 - T0 % 60) + 120
    assert sum(aenergy["by_minute"][:2]) / 1000 == pytest.approx(aenergy["total"], rel=0.05)


def test_pump_cycles_have_inrush_steady_power_and_idle():
    load = LoadModel(LoadProfile(kind="pump", steady_w=800.0, run_s=60, idle_s=60, glitch_p=0), _rng(1), t0=T0)
    readings = [load.read(T0 + i * 0.5) for i in range(2400)]
    powers = [r.apower for r in readings]
    assert max(powers) > 2000  # inrush spike at switch-on
    active = [p for p in powers if p > 0]
    assert 700 < sorted(active)[len(active) // 2] < 900  # settled power with noise
    assert 0.3 < len(active) / len(powers) < 0.7  # duty ≈ 50 %


def test_glitch_zeros_appear_only_inside_runs():
    load = LoadModel(LoadProfile(kind="pump", run_s=30, idle_s=30, glitch_p=0.2), _rng(7), t0=T0, step_hint_s=1.0)
    readings = [load.read(T0 + i) for i in range(3600)]
    glitches = [i for i, r in enumerate(readings) if r.glitch]
    assert len(glitches) > 50
    for i in glitches:
        assert readings[i].apower == 0.0 and readings[i].output
        assert readings[i - 1].apower > 0 and readings[i + 1].apower > 0  # isolated, inside a run
    idle_zeros = [r for r in readings if r.apower == 0 and not r.glitch]
    assert all(not r.output for r in idle_zeros)


def test_same_seed_plays_the_same_day():
    def day(seed):
        device = SimulatedPro4PM(index=2, seed=seed, scenario="glitchy", t0=T0)
        return [device.notify_full_status()] + [frame for _, frame in play(device, 900)]

    assert day(11) == day(11)
    assert day(11) != day(12)


def test_device_url_adds_the_token_path():
    assert device_url("ws://127.0.0.1:8000", "ing_x") == "ws://127.0.0.1:8000/ws/shelly/ing_x/"
    assert device_url("ws://127.0.0.1:8765/ws", "") == "ws://127.0.0.1:8765/ws"
    with pytest.raises(ValueError):
        device_url("ws://127.0.0.1:8000/", "")


def _rng(seed):
    return random.Random(seed)


async def test_client_answers_requests_streams_and_reconnects():
    """Against a minimal server that behaves like ours: bootstrap requests, then listen."""
    received, replies, connections = [], [], []

    async def handler(ws):
        connections.append(ws.request.headers.get("Sec-WebSocket-Protocol"))
        await ws.send(json.dumps({"id": 1, "src": "srv", "method": "NotifyStatus", "params": {"enable": True}}))
        await ws.send(json.dumps({"id": 2, "src": "srv", "method": "Shelly.GetStatus"}))
        async for message in ws:
            frame = json.loads(message)
            (replies if "id" in frame else received).append(frame)

    async with serve(handler, "127.0.0.1", 0, subprotocols=["json-rpc"]) as server:
        port = server.sockets[0].getsockname()[1]
        stats = await run_devices(
            f"ws://127.0.0.1:{port}/ws", 3, "steady", duration=3.5, rate=10, seed=1, disconnect_every=1.5
        )
    assert stats.reconnects >= 3 and len(connections) >= 6
    assert connections[0] == "json-rpc"
    # Counts, not a rate: every connection delivered its frames, none was lost.
    assert stats.frames_sent == len(received) >= len(connections)
    assert {f["method"] for f in received} == {"NotifyFullStatus", "NotifyStatus"}
    assert len({f["src"] for f in received}) == 3
    assert stats.rpc_answered == len(replies)
    assert {r["id"] for r in replies} == {1, 2}
    assert all("switch:0" in r["result"] for r in replies if r["id"] == 2)
