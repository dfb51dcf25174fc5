"""Every code example in README.md and docs/ is run, so the manual cannot drift from the code.

Fences (docs/getting-started.md, "How the examples are tested", says the same for authors):
- ```python blocks are executed, in page order and sharing one namespace per page, in a
  directory whose data/market is a store just recorded by `shriven run --sim`;
- ```bash blocks: each `shriven ...` line is parsed by the real command-line app (command,
  options and option values must exist and convert, as they would before the command runs);
  a block right after `<!-- docs-test: run -->` is also run for real in that directory and must
  exit 0; `./scripts/...` and `benchmarks/*.py` lines must name files that exist;
- ```text, ```json and ```toml blocks are output, file layouts or data: shown, not run;
- `<!-- docs-test: skip REASON -->` right before a python or bash block marks an illustration
  that cannot run here (real credentials, a real venue); it needs a reason and is rare.
Inline `shriven ...` code spans must name real commands and options, and every option of every
command must be described somewhere in the docs.
Dotted names (`shriven.wal.read_records`) must exist; the README's links must reach files and
headings.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from shriven.cli import app

# typer vendors the click its commands are built from (typer._click); reach it through the
# command objects' own classes so the test works with either.
ROOT = typer.main.get_command(app)
_core = next(
    sys.modules[c.__module__] for c in type(ROOT).__mro__ if c.__module__.endswith("click.core")
)
Context = _core.Context
ClickException = sys.modules[_core.__name__.rsplit(".", 1)[0] + ".exceptions"].ClickException


def is_group(command: object) -> bool:
    return hasattr(command, "list_commands")


REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
KNOWN_LANGS = {"python", "bash", "text", "json", "toml", "go"}  # go: a consumer, shown
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<what>run|skip)\b(?P<why>[^>]*)-->\s*\Z")
INLINE = re.compile(r"(?<!`)`(shriven [^`]+)`(?!`)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    marker: str  # "", "run" or "skip"

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n")
        marker = MARKER.search(before[-200:])
        what = ""
        if marker:
            what = marker["what"]
            if what == "skip" and not marker["why"].strip():
                pytest.fail(f"{page.name}: a docs-test skip marker needs a reason")
        line = text.count("\n", 0, m.start()) + 1
        found.append(Block(page, line, m["lang"].strip(), m["body"], what))
    return found


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]


def command_lines(body: str) -> list[str]:
    """Logical lines of a bash block (backslash continuations joined, comments dropped)."""
    joined = body.replace("\\\n", " ")
    return [shlex.join(shlex.split(line, comments=True)) for line in joined.splitlines()]


def cli() -> Any:
    return ROOT


def parse_command_line(argv: list[str]) -> Any:
    """Parse argv as the real app would before running anything: unknown commands, unknown
    options and values that do not convert raise click errors. Returns the command reached."""
    command: Any = cli()
    ctx = command.make_context("shriven", list(argv))
    while is_group(command):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            break
        name, sub, args = command.resolve_command(ctx, rest)
        assert sub is not None, f"no command {name}"
        command = sub
        ctx = command.make_context(name or "", args, parent=ctx)
    return command


def test_every_fence_names_a_known_language() -> None:
    bad = [f"{b.where}: ```{b.lang}" for b in ALL_BLOCKS if b.lang not in KNOWN_LANGS]
    assert not bad, (
        "fences must say what they hold ("
        + ", ".join(sorted(KNOWN_LANGS))
        + "): "
        + ("; ".join(bad))
    )


def test_markers_are_few() -> None:
    skipped = [b.where for b in ALL_BLOCKS if b.marker == "skip"]
    assert len(skipped) <= 3, f"too many examples that are not run: {skipped}"


BASH = [b for b in ALL_BLOCKS if b.lang == "bash" and b.marker != "skip"]


@pytest.mark.parametrize("block", BASH, ids=[b.where for b in BASH])
def test_bash_block_command_lines_parse(block: Block) -> None:
    checked = 0
    for line in command_lines(block.body):
        argv = shlex.split(line)
        if not argv:
            continue
        env_free = [a for a in argv if not re.match(r"^[A-Z_][A-Z0-9_]*=", a)]
        head = env_free[0]
        if head in ("shriven", ".venv/bin/shriven"):
            try:
                parse_command_line(env_free[1:])
            except ClickException as exc:
                pytest.fail(f"{block.where}: `{line}` does not parse: {exc.format_message()}")
            checked += 1
        elif head.startswith("./scripts/"):
            assert (REPO / head).is_file(), f"{block.where}: {head} does not exist"
            checked += 1
        elif env_free[1:3] == ["install", "-e"] or env_free[1:4] == ["-m", "pip", "install"]:
            extras = set(
                tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
                    "optional-dependencies"
                ]
            )
            for arg in env_free:
                wanted = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", arg)
                if wanted and wanted[1]:
                    unknown = set(wanted[1].split(",")) - extras
                    assert not unknown, f"{block.where}: no extra {unknown} in pyproject.toml"
                    checked += 1
        else:
            scripts = [a for a in env_free if a.endswith(".py")]
            for script in scripts:
                assert (REPO / script).is_file(), f"{block.where}: {script} does not exist"
            checked += len(scripts)
    assert checked, f"{block.where}: a bash block with nothing the test can check"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A directory whose data/market was recorded by the real daemon from the simulators."""
    root = tmp_path_factory.mktemp("docs")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHRIVEN_", "ZERODHA_", "BINANCE_"))
    }
    env |= {
        "SHRIVEN_CACHE_DIR": str(root / "cache"),
        "SHRIVEN_PIPELINE__SNAPSHOT_INTERVAL_SECS": "1",
        "SHRIVEN_PIPELINE__OPTION_STRIKE_RANGE": "2",
        "SHRIVEN_PIPELINE__SPOT_SYMBOLS": '["NIFTY 50"]',
    }
    cmd = [sys.executable, "-m", "shriven", "run", "--sim", "--quiet", "--health-port", "-1"]
    cmd += ["--data-dir", "data/market", "--sim-rate", "500", "--duration", "3"]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return root, env


RUN = [b for b in BASH if b.marker == "run"]


@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
def test_runnable_bash_block_exits_0(block: Block, workspace: tuple[Path, dict[str, str]]) -> None:
    root, env = workspace
    for line in command_lines(block.body):
        argv = shlex.split(line)
        if not argv:
            continue
        assert argv[0] == "shriven", f"{block.where}: only shriven commands run for real"
        cmd = [sys.executable, "-m", "shriven", *argv[1:]]
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, timeout=120)
        out = done.stdout.decode() + done.stderr.decode()
        assert done.returncode == 0, f"{block.where}: `{line}` exited {done.returncode}\n{out}"


PYTHON_PAGES = sorted({b.page for b in ALL_BLOCKS if b.lang == "python"})


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[p.name for p in PYTHON_PAGES])
def test_python_blocks_run(
    page: Path, workspace: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, env = workspace
    monkeypatch.chdir(root)
    for key in [k for k in os.environ if k.startswith(("SHRIVEN_", "ZERODHA_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("SHRIVEN_"):
            monkeypatch.setenv(key, value)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ran = 0
    for block in blocks(page):
        if block.lang != "python" or block.marker == "skip":
            continue
        code = compile(block.body, block.where, "exec")
        exec(code, namespace)
        ran += 1
    assert ran


def documented_text() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def test_inline_shriven_commands_exist() -> None:
    bad = []
    for page in PAGES:
        for span in INLINE.findall(page.read_text()):
            words = re.sub(r"[\[\]]", " ", span).split()[1:]  # synopses: [--opt X]
            command: Any = cli()
            for word in words:
                if not is_group(command) or word.startswith("-"):
                    break
                sub = command.get_command(Context(command), word)
                if sub is None:
                    if not re.fullmatch(r"[a-z][a-z-]*", word):
                        break  # a placeholder (PATH, <version>) or an argument ("NIFTY 50")
                    bad.append(f"{page.name}: `{span}`: no command {word!r}")
                    break
                command = sub
            known = {opt for p in command.params for opt in [*p.opts, *p.secondary_opts]}
            known |= {opt for p in cli().params for opt in p.opts} | {"--help"}
            for word in words:
                for option in word.split("=", 1)[0].split("/"):  # --progress/--no-progress
                    if option.startswith("--") and option not in known:
                        bad.append(f"{page.name}: `{span}`: {command.name} has no option {option}")
    assert not bad, "\n".join(bad)


def test_every_command_option_is_documented() -> None:
    text = documented_text()
    missing = []

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--") and opt != "--help" and opt not in text:
                    missing.append(f"{path} {opt}")
        if is_group(command):
            for name in command.list_commands(Context(command)):
                sub = command.get_command(Context(command), name)
                assert sub is not None
                if f"shriven {path[8:]} {name}".replace("  ", " ").strip() not in text:
                    missing.append(f"the command {path} {name}")
                walk(sub, f"{path} {name}")

    walk(cli(), "shriven")
    assert not missing, "undocumented: " + ", ".join(missing)


def heading_anchors(page: Path) -> set[str]:
    """The anchors the docs site gives a page's headings (markdown's toc slugs, which GitHub's
    agree with for the headings we write: no runs of punctuation)."""
    from markdown.extensions.toc import slugify

    text = FENCE.sub("", page.read_text())
    titles = re.findall(r"^#{1,6} (.+?)\s*$", text, re.M)
    return {slugify(title.replace("`", ""), "-") for title in titles}


def test_readme_links_point_at_files_and_headings() -> None:
    """mkdocs --strict checks the links inside docs/; the README is outside it."""
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    bad = []
    for link in links:
        if "://" in link:
            continue
        target, _, anchor = link.partition("#")
        if not (REPO / target).exists():
            bad.append(f"{link}: no file {target}")
        elif anchor and anchor not in heading_anchors(REPO / target):
            bad.append(f"{link}: no heading #{anchor} in {target}")
    assert links and not bad, "README links: " + "; ".join(bad)


def resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and look the rest up as attributes."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        return found
    raise ModuleNotFoundError(dotted)


def test_every_python_name_the_docs_give_exists() -> None:
    """`shriven.wal.read_records`, `shriven.sim.binance.BinanceSimulator(...)`: a module, class
    or function the docs name by its dotted path must exist there (a move or a rename fails)."""
    names = set()
    for page in PAGES:
        for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", page.read_text()):
            m = re.fullmatch(r"(shriven(?:\.[A-Za-z_]\w*)+)(?:\(.*\))?", span)
            if m and m[1].rsplit(".", 1)[1] not in ("toml", "lock"):
                names.add(m[1])
    bad = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError) as exc:
            bad.append(f"{name}: {exc}")
    assert names and not bad, "the docs name what does not exist: " + "; ".join(bad)


def test_every_setting_is_documented() -> None:
    """Each variable Settings reads (SHRIVEN_*, SHRIVEN_PIPELINE__*, ZERODHA_*) is named in the
    docs (docs/configuration.md lists them all), so a new setting cannot go undocumented."""
    from shriven.config import Settings

    variables = []
    for name, field in Settings.model_fields.items():
        nested = getattr(field.annotation, "model_fields", None)
        if nested is not None:
            variables += [f"SHRIVEN_{name.upper()}__{sub.upper()}" for sub in nested]
        elif isinstance(field.validation_alias, str):
            variables.append(field.validation_alias)
        else:
            variables.append(f"SHRIVEN_{name.upper()}")
    text = documented_text()
    missing = [v for v in variables if v not in text]
    assert len(variables) > 40 and not missing, f"settings the docs never name: {missing}"


def expand_braces(text: str) -> set[str]:
    """`shriven_queue_{depth,capacity}` -> shriven_queue_depth, shriven_queue_capacity; a label
    set after a name (`shriven_gaps_total{venue}`) is dropped."""
    names = set()
    for token in re.findall(r"shriven_[a-z_{},]*[a-z_}]", text):
        token = re.sub(r"(?<=[a-z])\{[^}]*\}$", "", token)  # a label set: _total{venue}
        parts = [""]
        for literal, options in re.findall(r"([^{]*)(?:\{([^}]*)\})?", token):
            parts = [p + literal for p in parts]
            if options:
                parts = [p + o for p in parts for o in options.split(",")]
        names.update(parts)
    return names


def test_every_metric_is_documented() -> None:
    """Every series /metrics serves (a real scrape of PipelineMetrics) is named in the docs."""
    from shriven.feeds.base import FeedStats
    from shriven.pipeline.metrics import PipelineMetrics
    from shriven.pipeline.queue import RecordQueue
    from shriven.pipeline.stats import PipelineStats

    metrics = PipelineMetrics()
    metrics.attach(lambda: [FeedStats("kite")], RecordQueue(10), PipelineStats(), lambda: 1)
    served = set(re.findall(r"^# TYPE (\S+) ", metrics.render().decode(), re.M))
    served = {n for n in served if not n.endswith("_created")}  # the client library's own
    missing = sorted(served - expand_braces(documented_text()))
    assert len(served) > 30 and not missing, f"metrics the docs never name: {missing}"
