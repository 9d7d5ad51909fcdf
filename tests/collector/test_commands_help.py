import pytest
from django.core.management import get_commands, load_command_class

OUR_APPS = {"collector", "configs", "dashboard", "alerts"}
OUR_COMMANDS = sorted(name for name, app in get_commands().items() if app in OUR_APPS)


@pytest.mark.parametrize("name", OUR_COMMANDS)
def test_every_command_prints_its_help(name):
    command = load_command_class(get_commands()[name], name)
    text = command.create_parser("manage.py", name).format_help()
    assert f"manage.py {name}" in text


def test_the_product_commands_exist():
    assert {"demo", "simulate_shelly", "rebuild_cycles", "run_poller", "setup_schedules"} <= set(OUR_COMMANDS)
