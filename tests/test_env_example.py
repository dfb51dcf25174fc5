""".env.example lists every setting with a comment (the issue's promise), so a new setting that is
not documented there fails here rather than surprising a user."""

from __future__ import annotations

import re
from pathlib import Path

from shriven.config import PipelineConfig, ServeConfig, Settings

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def _variables() -> list[str]:
    names = []
    for name, info in Settings.model_fields.items():
        if name == "pipeline":
            names += [f"SHRIVEN_PIPELINE__{field.upper()}" for field in PipelineConfig.model_fields]
        elif name == "serve":
            names += [f"SHRIVEN_SERVE__{field.upper()}" for field in ServeConfig.model_fields]
        elif isinstance(info.validation_alias, str):
            names.append(info.validation_alias)
        else:
            names.append(f"SHRIVEN_{name.upper()}")
    return [*names, "SHRIVEN_CONFIG_FILE"]


def _is_variable(line: str) -> bool:
    return re.match(r"#? ?[A-Z][A-Z0-9_]*=", line) is not None


def test_every_setting_is_in_env_example_under_a_comment():
    lines = EXAMPLE.read_text().splitlines()
    for name in _variables():
        at = [i for i, line in enumerate(lines) if line.lstrip("# ").startswith(f"{name}=")]
        assert at, f"{name} is missing from .env.example"
        i = at[0] - 1
        while i >= 0 and _is_variable(lines[i]):  # related variables may share one comment
            i -= 1
        comment = []
        while i >= 0 and lines[i].startswith("#") and not _is_variable(lines[i]):
            comment.append(lines[i])
            i -= 1
        # a section heading such as "# --- Where things live -----" says nothing about it
        said = [c for c in comment if not (c.startswith("# ---") and c.endswith("---"))]
        assert said, f"{name} in .env.example has no comment"
