"""YAML option files (``-c FILE.yaml``, ``--gates FILE.yaml``) read with bounded work.

    obj = read_yaml("my.yaml")        # what yaml.safe_load returns; InputError for an alias or a huge file

``yaml.safe_load`` runs no code, and it shares an aliased object rather than copying it, but anything
that walks the value expands it: a 433-byte file of nested ``*a`` references (a "billion laughs"
bomb) gave a 72 MB "one-line" error (the value's repr) and 1.5 GB of memory.  Option files never
need aliases, so any alias is refused before anything is built, and files over ``MAX_YAML_BYTES``
are refused unread.  Missing files, undecodable bytes and YAML syntax
errors are raised as ``OSError`` / ``UnicodeDecodeError`` / ``yaml.YAMLError`` for the caller's own message.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import InputError

#: An option file is a few hundred bytes; anything over this is not one.
MAX_YAML_BYTES = 1 << 20


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a small YAML file without expanding aliases.

    Raises:
        InputError: the file is over ``MAX_YAML_BYTES`` or uses an alias (``*name``).
        OSError, UnicodeDecodeError, yaml.YAMLError: unreadable, not UTF-8, not YAML.
    """
    import yaml

    p = os.fspath(path)
    with open(p, "rb") as f:
        data = f.read(MAX_YAML_BYTES + 1)
    if len(data) > MAX_YAML_BYTES:
        raise InputError(f"{p}: over {MAX_YAML_BYTES // 1024} KB, too large for an option file; pass the YAML file of options")
    text = data.decode("utf-8")
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise InputError(f"{p}: uses a YAML alias (*{str(event.anchor)[:40]}), which option files do not accept "
                             "(aliases can expand to gigabytes); write the values out")
    return yaml.safe_load(text)
