"""The two helpers example tests import from ESP-IDF's CI package, in this project's words:
the host address a board reaches (the source address of a UDP "connection" towards it) and a
variable of $IDF_PATH/EnvConfig.yml."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import yaml


def get_host_ip4_by_dest_ip(dest_ip: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((dest_ip, 80))
        return str(probe.getsockname()[0])


def get_env_config_variable(env_name: str, key: str) -> str:
    config = yaml.safe_load((Path(os.environ["IDF_PATH"]) / "EnvConfig.yml").read_text())
    return str(config[env_name][key])
