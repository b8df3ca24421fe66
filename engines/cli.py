"""Command-line shims for Hydra 1.3.

Hydra parses `curriculum_stage=3` as an int, and a config-group override must be a string
("Config group override must be a string or a list. Got int"). Users type the number, so the
entry points quote numeric choices of such groups before Hydra sees them:
`curriculum_stage=3` -> `curriculum_stage='3'`, `curriculum_stage=2,3` -> `curriculum_stage='2','3'`.
"""
from __future__ import annotations

import re

NUMERIC_GROUPS = ("curriculum_stage",)


def quote_numeric_group_overrides(argv: list[str], groups: tuple[str, ...] = NUMERIC_GROUPS) -> list[str]:
    out = []
    for arg in argv:
        m = re.fullmatch(rf"([+~]?)({'|'.join(groups)})=([0-9,\s]+)", arg)
        if m:
            values = [v.strip() for v in m.group(3).split(",") if v.strip()]
            arg = f"{m.group(1)}{m.group(2)}=" + ",".join(f"'{v}'" for v in values)
        out.append(arg)
    return out
