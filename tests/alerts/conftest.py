"""Fixtures shared by the alerts tests."""

import socket
import threading
import time
import uuid

import pytest


def mosquitto_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def subscriber():
    if not mosquitto_up():
        pytest.skip("Mosquitto is not running on 127.0.0.1:1883 (make services)")
    import paho.mqtt.client as mqtt

    topic = f"test/{uuid.uuid4().hex}/motion"
    seen = []
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic.split("/motion")[0] + "/#", qos=1)
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = lambda c, u, msg: seen.append((time.monotonic(), msg.topic, msg.payload.decode(), msg.retain))
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    assert ready.wait(10)
    yield topic, seen
    client.disconnect()
    client.loop_stop()
