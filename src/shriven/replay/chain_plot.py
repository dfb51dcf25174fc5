"""The smile of each recorded expiry and the term structure, drawn to a PNG with matplotlib's
Agg backend (no display needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from shriven.errors import ReplayError
from shriven.replay.chain import ChainSnapshot, ExpiryChain
from shriven.replay.times import format_ns

__all__ = ["PLOT_DPI", "PlotInfo", "plot_chain"]

PLOT_DPI: Final = 100
_WIDTH_IN: Final = 10.0
_ROW_IN: Final = 4.0


@dataclass(slots=True)
class PlotInfo:
    """What was drawn: the PNG's size in pixels and each panel's title and axis labels."""

    path: Path
    width: int
    height: int
    title: str
    panels: list[tuple[str, str, str]] = field(default_factory=list)  # (title, x label, y label)


def _pct(values: list[float | None]) -> list[float]:
    return [float("nan") if v is None else 100.0 * v for v in values]


def _atm_iv(e: ExpiryChain) -> float | None:
    ivs = [leg.iv_mid for leg in e.legs if leg.atm and leg.iv_mid is not None]
    return sum(ivs) / len(ivs) if ivs else None


def plot_chain(snapshot: ChainSnapshot, path: Path, zone: ZoneInfo) -> PlotInfo:
    """Smile (IV from bid, mid and ask against strike, calls and puts) per expiry, and the ATM
    term structure when more than one expiry was recorded."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReplayError("--plot needs matplotlib: pip install 'shriven[plot]'") from None
    expiries = [e for e in snapshot.expiries if e.legs]
    term = len(expiries) > 1
    rows = len(expiries) + (1 if term else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(_WIDTH_IN, _ROW_IN * rows), squeeze=False)
    title = (
        f"{snapshot.underlying} at {format_ns(snapshot.at_ns, zone)}; spot {snapshot.spot or '-'}"
    )
    fig.suptitle(title)
    info = PlotInfo(path, int(_WIDTH_IN * PLOT_DPI), int(_ROW_IN * rows * PLOT_DPI), title)
    for ax, e in zip(axes[:, 0], expiries, strict=False):
        for kind, colour in (("CE", "tab:blue"), ("PE", "tab:red")):
            legs = [leg for leg in e.legs if leg.type == kind]
            k = [leg.strike for leg in legs]
            ax.plot(k, _pct([leg.iv_mid for leg in legs]), "o-", color=colour, ms=3,
                    label=f"{kind} mid")  # fmt: skip
            ax.plot(k, _pct([leg.iv_bid for leg in legs]), "v", color=colour, ms=3, alpha=0.5,
                    label=f"{kind} bid")  # fmt: skip
            ax.plot(k, _pct([leg.iv_ask for leg in legs]), "^", color=colour, ms=3, alpha=0.5,
                    label=f"{kind} ask")  # fmt: skip
        if e.forward is not None:
            ax.axvline(e.forward, color="grey", lw=0.8, ls="--", label="forward")
        panel = f"smile, expiry {e.expiry} ({e.years * 365:.1f} days)"
        ax.set_title(panel)
        ax.set_xlabel("strike")
        ax.set_ylabel("implied volatility (%)")
        ax.legend(fontsize="x-small", ncol=4)
        ax.grid(alpha=0.3)
        info.panels.append((panel, "strike", "implied volatility (%)"))
    if term:
        ax = axes[-1, 0]
        points = [(e.years * 365, _atm_iv(e)) for e in expiries]
        days = [d for d, v in points if v is not None]
        ivs = [100.0 * v for _d, v in points if v is not None]
        ax.plot(days, ivs, "o-", color="tab:green")
        ax.set_title("term structure (ATM mid IV)")
        ax.set_xlabel("days to expiry")
        ax.set_ylabel("ATM implied volatility (%)")
        ax.grid(alpha=0.3)
        info.panels.append(
            ("term structure (ATM mid IV)", "days to expiry", "ATM implied volatility (%)")
        )
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=PLOT_DPI, format="png")
    except OSError as exc:
        raise ReplayError(
            f"cannot write {path}: {exc.strerror or exc}; choose another --plot"
        ) from None
    finally:
        plt.close(fig)
    return info
