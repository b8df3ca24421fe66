"""Command-line shims for Hydra 1.3.

Hydra parses `curriculum_stage=3` as an int, and a config-group override must be a string
("Config group override must be a string or a list. Got int"). Users type the number, so the
entry points quote numeric choices of such groups before Hydra sees them:
`curriculum_stage=3` -> `curriculum_stage='3'`, `curriculum_stage=2,3` -> `curriculum_stage='2','3'`.
"""
from __future__ import annotations

import os
import re
import tempfile

from runconfig.schema import GROUPS, known_keys, nearest

NUMERIC_GROUPS = ("curriculum_stage",)


def quote_numeric_group_overrides(argv: list[str], groups: tuple[str, ...] = NUMERIC_GROUPS) -> list[str]:
    """Quote every plain value of the given groups (3, -1, 2.5 alike), so Hydra treats it as an
    option name and a bad one gets Hydra's own "Could not find ... Available options" message."""
    out = []
    for arg in argv:
        m = re.fullmatch(rf"([+~]?)({'|'.join(groups)})=([^'\"\[\]()]+)", arg)
        if m:
            values = [v.strip() for v in m.group(3).split(",") if v.strip()]
            arg = f"{m.group(1)}{m.group(2)}=" + ",".join(f"'{v}'" for v in values)
        out.append(arg)
    return out


def check_output_dir_override(argv: list[str]) -> str | None:
    """An unwritable hydra.run.dir / hydra.sweep.dir, as a message (Hydra would create it first
    and fail with a traceback before any project code runs); None when it is fine. The nearest
    existing ancestor must take a new directory: tried for real (a probe directory made and
    removed), since os.access answers yes to root everywhere, /proc and read-only mounts included."""
    for arg in argv:
        m = re.fullmatch(r"hydra\.(?:run|sweep)\.dir=(.+)", arg)
        if not m:
            continue
        path = os.path.abspath(m.group(1).strip("'\""))
        probe = path
        while not os.path.exists(probe):  # the nearest existing ancestor must be a writable dir
            probe = os.path.dirname(probe)
        why = f"{probe!r} is not a directory" if not os.path.isdir(probe) else None
        if why is None:
            try:
                os.rmdir(tempfile.mkdtemp(prefix=".liftbase-write-probe-", dir=probe))
            except OSError as e:
                why = f"no directory can be created in {probe!r}: {e.strerror or 'read-only'}"
        if why is not None:
            return (f"output directory {path!r} is not writable ({why}): choose another with "
                    f"{arg.split('=', 1)[0]}=...")
    return None


def check_unknown_overrides(argv: list[str]) -> str | None:
    """A `key=value` override whose key no config declares, as the project's message with the
    nearest declared key (Hydra would first answer with its own "not in struct" or "To append to
    your config use +key"); None when every key is declared. `+`/`~` overrides, Hydra's own keys and
    group choices are left to Hydra and to the validation of the composed config."""
    for arg in argv:
        m = re.fullmatch(r"([A-Za-z_][\w.]*)=(.*)", arg, flags=re.S)
        if not m:
            continue
        key = m.group(1)
        if key.startswith("hydra.") or key in GROUPS or key in ("experiment", "hydra") or key in known_keys():
            continue
        hint = nearest(key)
        return (f"{arg} is invalid: unknown key '{key}', which no config declares; "
                + (f"did you mean '{hint}'? " if hint else "")
                + "allowed: the keys declared in runconfig/schema.py (python scripts/train.py --help)")
    return None
