"""Frames and statuses → Samples (§4.1), on real Shelly payloads (tests/fixtures/shelly)."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.parsing import DeviceStatusTracker, FrameError, decode_frame

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "shelly"
NOW = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
PRO4PM = "shellypro4pm-aabbccddeeff"
PRO3EM = "shellypro3em-aabbccddeeff"


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def pro4pm_status():
    return fixture("aioshelly_pro4pm_SPSW-004PE16EU_fw1.0.3_full.json")["status"]


def pro3em_status():
    return fixture("aioshelly_pro3em_SPEM-003CEBEU_fw1.1.0_full.json")["status"]


def notify(method, params, *, src=PRO4PM, ts=NOW):
    params = dict(params)
    if ts is not None:
        params["ts"] = ts.timestamp()
    return {"src": src, "dst": "shelly-monitor", "method": method, "params": params}


def parse(frame, tracker=None, received_at=NOW):
    return (tracker or DeviceStatusTracker()).parse(frame, received_at=received_at)


def by_key(samples):
    return {s.channel_key: s for s in samples}


# -- shapes --------------------------------------------------------------------


def test_pro4pm_full_status_gives_four_switch_samples_with_their_values():
    status = pro4pm_status()
    status["switch:2"].update(apower=512.4, current=4.21, voltage=229.5)
    status["switch:2"]["aenergy"]["total"] = 12345.678

    parsed = parse(notify("NotifyFullStatus", status))

    assert parsed.kind == "status" and parsed.problems == [] and not parsed.clock_skew
    samples = by_key(parsed.samples)
    assert sorted(samples) == ["switch:0", "switch:1", "switch:2", "switch:3"]
    s2 = samples["switch:2"]
    assert (s2.device_id, s2.ts, s2.apower_w, s2.voltage_v, s2.current_a) == (PRO4PM, NOW, 512.4, 229.5, 4.21)
    assert s2.energy_total_wh == 12345.678 and s2.freq == 60.0 and s2.pf == 0.0
    assert s2.returned_energy_wh is None  # fw 1.0.3 has no ret_aenergy
    assert (samples["switch:1"].apower_w, samples["switch:1"].voltage_v) == (0.0, 121.8)


def test_nested_device_status_is_read_like_flat_params():
    status = pro4pm_status()
    frame = {"src": PRO4PM, "method": "NotifyFullStatus", "params": {"ts": NOW.timestamp(), "device_status": status}}

    assert len(parse(frame).samples) == 4


def test_getstatus_result_is_a_full_status_dated_by_the_device_clock():
    status = pro4pm_status()
    status["sys"]["unixtime"] = int(NOW.timestamp()) - 3
    frame = {"id": 2, "src": PRO4PM, "dst": "shelly-monitor", "result": status}

    parsed = parse(frame)

    assert parsed.kind == "status" and parsed.frame_id == 2
    assert len(parsed.samples) == 4
    assert parsed.samples[0].ts == NOW - timedelta(seconds=3)


def test_response_without_status_gives_no_samples():
    frame = fixture("aioshelly_ws_rpc_response_success_null_result.json")

    parsed = parse(frame)

    assert parsed.kind == "response" and parsed.samples == []


def test_error_frame_is_recognised():
    assert parse(fixture("docs_example_error_-105_not_found.json")).kind == "error"


def test_pro3em_status_gives_phase_and_total_samples_with_emdata_energies():
    status = pro3em_status()
    status["em:0"]["b_pf"] = -0.93  # seen on a real Pro 3EM (ioBroker #787)
    assert status["em:0"]["n_current"] is None

    parsed = parse(notify("NotifyFullStatus", status, src=PRO3EM))

    assert parsed.problems == []
    samples = by_key(parsed.samples)
    assert sorted(samples) == ["em:0:a", "em:0:b", "em:0:c", "em:0:total"]
    a, b, total = samples["em:0:a"], samples["em:0:b"], samples["em:0:total"]
    assert (a.apower_w, a.voltage_v, a.current_a, a.pf, a.freq) == (375.5, 229.0, 2.392, 0.76, 50.0)
    assert a.energy_total_wh == 2034616.71 and a.returned_energy_wh == 0.0
    assert b.pf == -0.93 and b.returned_energy_wh == 40.7
    assert (total.apower_w, total.current_a, total.energy_total_wh) == (558.965, 3.856, 2589773.39)
    assert total.returned_energy_wh == 1026.61


def test_negative_em_power_is_valid_data():
    status = pro3em_status()
    status["em:0"]["c_act_power"] = -812.0  # exporting

    samples = by_key(parse(notify("NotifyFullStatus", status, src=PRO3EM)).samples)

    assert samples["em:0:c"].apower_w == -812.0


def test_em1_channels_read_their_em1data_counter():
    status = {
        "em1:0": {"id": 0, "current": 1.865, "voltage": 230.1, "act_power": 401.2, "pf": 0.93, "freq": 50.0},
        "em1data:0": {"id": 0, "total_act_energy": 1234.5, "total_act_ret_energy": 0.0},
    }

    (sample,) = parse(notify("NotifyFullStatus", status, src="shellypro3em-112233445566")).samples

    assert (sample.channel_key, sample.apower_w, sample.energy_total_wh) == ("em1:0", 401.2, 1234.5)


def test_docs_notifystatus_with_only_output_gives_no_sample_and_no_error():
    frame = fixture("docs_example_notifystatus_switch0_pro4pm.json")

    parsed = parse(frame, received_at=datetime.fromtimestamp(frame["params"]["ts"], tz=UTC))

    assert parsed.kind == "status" and parsed.samples == [] and parsed.problems == []


# -- partial updates -----------------------------------------------------------


def test_partial_status_with_only_apower_keeps_last_voltage_and_energy():
    tracker = DeviceStatusTracker()
    status = pro4pm_status()
    status["switch:0"].update(apower=0.0, voltage=229.0, current=0.0)
    status["switch:0"]["aenergy"]["total"] = 5000.0
    parse(notify("NotifyFullStatus", status), tracker)

    later = NOW + timedelta(seconds=10)
    parsed = parse(notify("NotifyStatus", {"switch:0": {"id": 0, "apower": 480.0}}, ts=later), tracker, later)

    (sample,) = parsed.samples
    assert (sample.channel_key, sample.ts, sample.apower_w) == ("switch:0", later, 480.0)
    assert (sample.voltage_v, sample.energy_total_wh) == (229.0, 5000.0)


def test_partial_status_with_only_energy_keeps_last_power():
    tracker = DeviceStatusTracker()
    status = pro4pm_status()
    status["switch:1"]["apower"] = 300.0
    parse(notify("NotifyFullStatus", status), tracker)

    update = {"switch:1": {"aenergy": {"total": 77.5, "by_minute": [1, 2, 3], "minute_ts": 1}}}
    (sample,) = parse(notify("NotifyStatus", update, ts=NOW + timedelta(seconds=60)), tracker).samples

    assert (sample.channel_key, sample.apower_w, sample.energy_total_wh) == ("switch:1", 300.0, 77.5)


def test_partial_status_before_any_full_status_never_invents_zeros():
    parsed = parse(notify("NotifyStatus", {"switch:0": {"id": 0, "voltage": 230.0}}))

    assert parsed.samples == []


def test_null_removes_a_key_from_the_known_status():
    tracker = DeviceStatusTracker()
    parse(notify("NotifyFullStatus", pro4pm_status()), tracker)

    parsed = parse(notify("NotifyStatus", {"switch:0": {"voltage": None}}), tracker)

    (sample,) = parsed.samples
    assert sample.voltage_v is None and sample.apower_w == 0.0
    assert "voltage" not in tracker.statuses[PRO4PM]["switch:0"]

    parse(notify("NotifyStatus", {"switch:3": None}), tracker)
    assert "switch:3" not in tracker.statuses[PRO4PM]


def test_partial_status_of_unrelated_component_gives_no_sample():
    tracker = DeviceStatusTracker()
    parse(notify("NotifyFullStatus", pro4pm_status()), tracker)

    assert parse(notify("NotifyStatus", {"sys": {"cfg_rev": 35}}), tracker).samples == []


# -- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("{not json", "invalid_json"),
        (b"\xff\xfe{}", "invalid_json"),
        ('{"src": "x", "params": {"switch:0": {"apower": NaN}}}', "non_finite"),
        ('{"src": "x", "params": {"ts": Infinity}}', "non_finite"),
        ('{"src": "x", "params": {"ts": -Infinity}}', "non_finite"),
        ("[1, 2, 3]", "wrong_type"),
        ('"NotifyStatus"', "wrong_type"),
        ("null", "wrong_type"),
    ],
)
def test_undecodable_frames_raise_the_right_kind(text, kind):
    with pytest.raises(FrameError) as excinfo:
        decode_frame(text, max_bytes=65536)

    assert excinfo.value.kind == kind


def test_oversize_frame_is_refused_before_decoding():
    text = json.dumps({"src": PRO4PM, "pad": "x" * 70_000})

    with pytest.raises(FrameError) as excinfo:
        decode_frame(text, max_bytes=65536)

    assert excinfo.value.kind == "oversize"


def test_multibyte_characters_count_as_bytes():
    text = json.dumps({"src": PRO4PM, "pad": "é" * 20_000}, ensure_ascii=False)  # 20k chars, 40k bytes

    assert decode_frame(text, max_bytes=50_000)["src"] == PRO4PM
    with pytest.raises(FrameError):
        decode_frame(text, max_bytes=30_000)


def test_numbers_beyond_float_range_are_non_finite():
    frame = decode_frame(
        '{"src": "x", "method": "NotifyStatus", "params": {"switch:0": {"apower": 1e999}}}', max_bytes=1000
    )

    parsed = parse(frame)

    assert parsed.samples == [] and parsed.problems == ["non_finite"]


@pytest.mark.parametrize(
    ("component", "value"),
    [
        ("switch:0", {"id": 0, "apower": "480"}),
        ("switch:0", {"id": 0, "apower": True}),
        ("switch:0", {"id": 0, "apower": 480.0, "aenergy": {"total": "5"}}),
        ("switch:0", {"id": 0, "apower": 480.0, "aenergy": 5}),
        ("switch:0", [480.0]),
        ("em:0", {"id": 0, "a_act_power": {"w": 1}}),
        ("emdata:0", {"id": 0, "total_act": "lots"}),
    ],
)
def test_wrong_types_drop_the_component(component, value):
    parsed = parse(notify("NotifyFullStatus", {component: value}))

    assert parsed.samples == [] and parsed.problems == ["wrong_type"]


def test_unknown_component_is_dropped_and_the_rest_used():
    status = {"switch:0": {"id": 0, "apower": 100.0}, "flux_capacitor:0": {"id": 0, "apower": 1.21e9}}

    parsed = parse(notify("NotifyFullStatus", status))

    assert parsed.problems == ["unknown_component"]
    assert [s.channel_key for s in parsed.samples] == ["switch:0"]


def test_src_must_be_a_string():
    with pytest.raises(FrameError) as excinfo:
        parse({"src": 42, "method": "NotifyStatus", "params": {"switch:0": {"apower": 1.0}}})

    assert excinfo.value.kind == "wrong_type"


def test_params_must_be_an_object():
    with pytest.raises(FrameError) as excinfo:
        parse({"src": PRO4PM, "method": "NotifyStatus", "params": [1, 2]})

    assert excinfo.value.kind == "wrong_type"


def test_device_request_is_recognised():
    parsed = parse({"id": 7, "src": PRO4PM, "method": "Shelly.Ping"})

    assert (parsed.kind, parsed.frame_id, parsed.method) == ("request", 7, "Shelly.Ping")


# -- device time and clock skew ----------------------------------------------------


@pytest.mark.parametrize("offset_s", [-290, -5, 0, 4.37, 290])
def test_device_time_within_five_minutes_is_used(offset_s):
    device_ts = NOW + timedelta(seconds=offset_s)

    parsed = parse(notify("NotifyStatus", {"switch:0": {"id": 0, "apower": 5.0}}, ts=device_ts))

    assert not parsed.clock_skew
    assert parsed.samples[0].ts == device_ts


@pytest.mark.parametrize("offset_s", [-600, 600, -86400 * 365 * 30])
def test_device_time_ten_minutes_off_is_replaced_by_server_time(offset_s):
    device_ts = NOW + timedelta(seconds=offset_s)

    parsed = parse(notify("NotifyStatus", {"switch:0": {"id": 0, "apower": 5.0}}, ts=device_ts))

    assert parsed.clock_skew
    assert parsed.samples[0].ts == NOW


@pytest.mark.parametrize("raw_ts", ["1700000000", True, [1], -1])
def test_odd_timestamps_count_as_skew(raw_ts):
    frame = {"src": PRO4PM, "method": "NotifyStatus", "params": {"ts": raw_ts, "switch:0": {"apower": 5.0}}}

    parsed = parse(frame)

    assert parsed.clock_skew and parsed.samples[0].ts == NOW


def test_missing_timestamp_uses_server_time_without_skew():
    parsed = parse(notify("NotifyStatus", {"switch:0": {"id": 0, "apower": 5.0}}, ts=None))

    assert not parsed.clock_skew and parsed.samples[0].ts == NOW


def test_a_relayed_getconfig_result_does_not_wipe_the_known_status():
    from datetime import UTC, datetime

    from collector.parsing import DeviceStatusTracker

    now = datetime.now(UTC)
    tracker = DeviceStatusTracker()
    src = "shellypro4pm-aabbccddeeff"
    full = {"src": src, "method": "NotifyFullStatus", "params": {"ts": now.timestamp(), "switch:0": {
        "id": 0, "apower": 512.0, "voltage": 230.1, "aenergy": {"total": 10.0}}}}  # fmt: skip
    tracker.parse(full, received_at=now)
    config = {"id": 7, "src": src, "result": {"switch:0": {"id": 0, "name": "Pump", "in_mode": "follow"},
              "sys": {"device": {"name": "x"}}}}  # fmt: skip
    parsed = tracker.parse(config, received_at=now)
    assert parsed.kind == "response" and parsed.samples == []
    partial = {"src": src, "method": "NotifyStatus", "params": {"ts": now.timestamp() + 1, "switch:0": {
        "id": 0, "aenergy": {"total": 11.0}}}}  # fmt: skip
    [sample] = tracker.parse(partial, received_at=now).samples
    assert (sample.apower_w, sample.voltage_v, sample.energy_total_wh) == (512.0, 230.1, 11.0)
