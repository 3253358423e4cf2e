"""PNG plots of the CPU findings (matplotlib, the `experiments` extra; skipped without it).

Every plot shows the mean over seeds as a bar, the sample standard deviation as an error bar and
each seed as a dot, so the spread is visible rather than summarised away.
"""

from __future__ import annotations

import os

import numpy as np


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _bars(axis, positions, series: list[list[float]], color: str, label: str, width: float):
    means = [np.mean(v) if v else np.nan for v in series]
    stds = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in series]
    axis.bar(positions, means, width, yerr=stds, capsize=3, color=color, label=label, alpha=0.85)
    for position, values in zip(positions, series):
        axis.scatter([position] * len(values), values, s=10, color='black', zorder=3)


def grouped_plot(path: str, title: str, variants: list[str], groups: dict[str, list[list[float]]],
                 colors: dict[str, str], ylabel: str = 'search mAP (%)') -> str:
    """Bars per variant, one per group (e.g. single vs aggregated detection data)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(1.6 + 1.4 * len(variants), 3.4))
    width = 0.8 / max(len(groups), 1)
    for index, (label, series) in enumerate(groups.items()):
        positions = np.arange(len(variants)) + (index - (len(groups) - 1) / 2) * width
        _bars(axis, positions, series, colors.get(label, f'C{index}'), label, width)
    axis.set_xticks(np.arange(len(variants)), variants)
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=10)
    axis.grid(axis='y', alpha=0.3)
    if len(groups) > 1:
        axis.legend(fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def speed_plot(path: str, models: list[str], settings: list[str],
               speed: dict[str, dict[str, float]]) -> str:
    """Milliseconds per image of each model, one bar group per (batch, people) setting."""
    groups = {setting: [[speed.get(model, {}).get(setting, np.nan)] for model in models]
              for setting in settings}
    return grouped_plot(path, 'inference time per image (float32, CPU)', models, groups, {},
                        ylabel='ms per image')
