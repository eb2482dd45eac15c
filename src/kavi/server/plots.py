"""A kernel's speed as an SVG plot, drawn on the server with matplotlib (no script runs in the browser).

Left axis: speedup over torch per bench size with its bootstrap confidence interval as error bars, one series
per dtype, and the spec's minimum as a dashed line. Right axis: the fraction of the roofline reached. Where no
machine measured the kernel the plot says "unmeasured" and why, in words, instead of drawing nothing.
"""

from __future__ import annotations

import io
from functools import lru_cache

from kavi.server.kernel_reports import SpeedResult, SpeedRow

WIDTH_IN, HEIGHT_IN = 7.0, 3.6


def speed_alt_text(name: str, speed: SpeedResult) -> str:
    """The plot in words, for the img's alt text and for anyone who cannot see it."""
    if not speed.measured:
        return f"Speed of {name}: unmeasured ({speed.reason}). No speedup or roofline figures exist."
    parts = [
        f"{row.size} {row.dtype}: speedup {row.speedup:.2f} (95% CI {row.low:.2f} to {row.high:.2f})"
        + (f", {row.roofline:.0%} of roofline" if row.roofline is not None else "")
        for row in speed.rows
    ]
    return f"Speedup of {name} over torch per size, minimum {speed.min_speedup:g}: " + "; ".join(parts) + "."


def speed_svg(name: str, speed: SpeedResult) -> bytes:
    return _cached_svg(name, tuple(speed.rows), speed.reason or "", speed.min_speedup, tuple(speed.bench_sizes))


@lru_cache(maxsize=64)
def _cached_svg(
    name: str, rows: tuple[SpeedRow, ...], reason: str, min_speedup: float, bench_sizes: tuple[str, ...]
) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN))
    axes = figure.add_subplot()
    axes.set_title(f"{name}: speedup over torch (95% CI) and roofline fraction")
    sizes = list(dict.fromkeys([*bench_sizes, *(row.size for row in rows)]))
    positions = {size: index for index, size in enumerate(sizes)}
    axes.set_xticks(range(len(sizes)), sizes)
    axes.set_xlabel("bench size")
    axes.set_ylabel("speedup over torch")
    axes.set_xlim(-0.5, max(len(sizes) - 0.5, 0.5))
    if not rows:
        axes.set_ylim(0, max(2.0, min_speedup * 2))
        axes.axhline(min_speedup, linestyle="--", color="grey", label=f"minimum {min_speedup:g}")
        axes.text(
            0.5, 0.55, "unmeasured", transform=axes.transAxes, ha="center", va="center", fontsize=22, color="#9a3412"
        )
        axes.text(0.5, 0.35, _wrap(reason), transform=axes.transAxes, ha="center", va="center", fontsize=9)
    else:
        _draw_rows(axes, rows, positions, min_speedup)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "kavi"}):  # text stays text; stable ids
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def _draw_rows(axes: object, rows: tuple[SpeedRow, ...], positions: dict[str, int], min_speedup: float) -> None:
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    dtypes = list(dict.fromkeys(row.dtype for row in rows))
    width = 0.6 / max(len(dtypes), 1)
    roofline_axes = axes.twinx()
    roofline_axes.set_ylabel("fraction of roofline")
    roofline_axes.set_ylim(0, 1.05)
    for index, dtype in enumerate(dtypes):
        mine = [row for row in rows if row.dtype == dtype]
        xs = [positions[row.size] - 0.3 + width * (index + 0.5) for row in mine]
        speedups = [row.speedup for row in mine]
        errors = [[row.speedup - row.low for row in mine], [row.high - row.speedup for row in mine]]
        axes.errorbar(xs, speedups, yerr=errors, fmt="o", capsize=4, label=f"speedup {dtype}")
        fractions = [(x, row.roofline) for x, row in zip(xs, mine, strict=True) if row.roofline is not None]
        if fractions:
            roofline_axes.plot(
                [x for x, _ in fractions], [f for _, f in fractions], "s", alpha=0.45, label=f"roofline {dtype}"
            )
    axes.axhline(min_speedup, linestyle="--", color="grey", label=f"minimum {min_speedup:g}")
    axes.set_ylim(0, max(max(row.high for row in rows), min_speedup) * 1.2)
    if roofline_axes.get_legend_handles_labels()[0]:
        roofline_axes.legend(loc="upper right", fontsize=8)


def _wrap(text: str, width: int = 80) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or "no GPU measured it"
