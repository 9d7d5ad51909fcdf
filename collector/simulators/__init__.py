"""Device simulators (§4.4): real-protocol Shelly devices for demos, tests and benchmarks.

`manage.py simulate_shelly --kind <kind>` dispatches through `SIMULATOR_KINDS`:
each entry names a module with `add_arguments(parser)` (its own options) and
`run_command(options, *, stdout, stop)` (an async function that runs until
`stop` is set or its `--duration` ends and returns a summary line). To add a
kind (e.g. the HTTP RPC 3EM), write `collector/simulators/<kind>.py` with
those two functions and add one line here.
"""

from importlib import import_module

SIMULATOR_KINDS = {
    "pro4pm": "collector.simulators.pro4pm",
    "pro4pm-local": "collector.simulators.pro4pm_local",
    "rpc3em": "collector.simulators.rpc3em",
}


def simulator_module(kind: str):
    return import_module(SIMULATOR_KINDS[kind])
