"""Matplotlib plots for the ready-made queries: ``plot_<query>(df, ax=None) -> Axes``.

Each draws on ``ax`` (or a new figure's axes) and returns the axes, so plots compose in a
``plt.subplots`` grid. They only read the DataFrame their query returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas
    from matplotlib.axes import Axes

__all__ = [
    "plot_activity_latency",
    "plot_events_by_type_and_month",
    "plot_run_durations",
    "plot_signal_wait_times",
    "plot_throughput_per_minute",
]


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=(8, 4))
    return new


def _empty(ax: Axes, title: str) -> Axes:
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return ax


def plot_events_by_type_and_month(df: pandas.DataFrame, ax: Axes | None = None) -> Axes:
    """Stacked bars: events per month, one colour per event type."""
    ax = _axes(ax)
    title = "Journal events by type and month"
    if df.empty:
        return _empty(ax, title)
    wide = df.pivot_table(index="month", columns="event_type", values="events", aggfunc="sum", fill_value=0)
    wide.plot.bar(stacked=True, ax=ax, rot=0)
    ax.set_title(title)
    ax.set_xlabel("month (UTC)")
    ax.set_ylabel("events")
    ax.legend(title="event type", fontsize="small")
    return ax


def plot_run_durations(df: pandas.DataFrame, ax: Axes | None = None) -> Axes:
    """Grouped bars of p50 / p95 / p99 run duration per workflow."""
    ax = _axes(ax)
    title = "Run duration by workflow"
    if df.empty:
        return _empty(ax, title)
    df.set_index("workflow")[["p50_s", "p95_s", "p99_s"]].plot.bar(ax=ax, rot=0)
    ax.set_title(title)
    ax.set_ylabel("seconds")
    ax.legend(["p50", "p95", "p99"])
    return ax


def plot_activity_latency(df: pandas.DataFrame, ax: Axes | None = None) -> Axes:
    """Bars of p50 / p95 latency per activity, each labelled with its retry rate."""
    ax = _axes(ax)
    title = "Activity latency (scheduled → completed/failed)"
    if df.empty:
        return _empty(ax, title)
    frame = df.set_index("activity")
    frame[["p50_s", "p95_s"]].plot.bar(ax=ax, rot=0)
    for i, rate in enumerate(frame["retry_rate"]):
        if rate == rate:  # not NaN: the activity has finished at least once
            top = frame["p95_s"].iloc[i]
            ax.annotate(f"retries {rate:.0%}", (i, 0 if top != top else top), ha="center",
                        va="bottom", fontsize="small")
    ax.set_title(title)
    ax.set_ylabel("seconds")
    ax.legend(["p50", "p95"])
    return ax


def plot_signal_wait_times(df: pandas.DataFrame, ax: Axes | None = None) -> Axes:
    """Bars of p50 / p95 wait per signal name."""
    ax = _axes(ax)
    title = "Signal wait time (awaited → received)"
    if df.empty:
        return _empty(ax, title)
    df.set_index("name")[["p50_s", "p95_s"]].plot.bar(ax=ax, rot=0)
    ax.set_title(title)
    ax.set_xlabel("signal")
    ax.set_ylabel("seconds")
    ax.legend(["p50", "p95"])
    return ax


def plot_throughput_per_minute(df: pandas.DataFrame, ax: Axes | None = None) -> Axes:
    """Events per minute (left axis) and completed runs per minute (right axis)."""
    ax = _axes(ax)
    title = "Throughput per minute"
    if df.empty:
        return _empty(ax, title)
    # markers keep a short series (a single busy minute) visible
    marker = "o" if len(df) <= 60 else None
    ax.plot(df["minute"], df["events"], color="tab:blue", marker=marker, label="events")
    ax.set_ylabel("events / min", color="tab:blue")
    ax.set_ylim(bottom=0, top=max(float(df["events"].max()), 1.0) * 1.1)
    right = ax.twinx()
    right.plot(df["minute"], df["completed_runs"], color="tab:orange", marker=marker, label="completed runs")
    right.set_ylabel("completed runs / min", color="tab:orange")
    right.set_ylim(bottom=0, top=max(float(df["completed_runs"].max()), 1.0) * 1.1)
    if len(df) == 1:  # otherwise matplotlib pads a single instant out to years
        import pandas as pd

        minute = df["minute"].iloc[0]
        ax.set_xlim(minute - pd.Timedelta(minutes=2), minute + pd.Timedelta(minutes=2))
    ax.set_title(title)
    ax.set_xlabel("minute (UTC)")
    # rotate this axes' labels only (Figure.autofmt_xdate would hide other subplots' labels)
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    return ax

