"""A chart of where the batches stand, as a PNG — only with a CJK font: a chart whose
labels would be boxes is worse than none, and the summary's text says it all anyway.

Drawn through matplotlib's object API (a `Figure` on its own Agg canvas, the font given
to each text): charts are drawn from worker threads, and pyplot's current figure and the
process-wide rcParams are state no thread may touch."""

from __future__ import annotations

import io
import logging
from functools import cache

CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK", "Noto Serif CJK SC", "Source Han Sans SC",
                "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "SimHei", "Microsoft YaHei",
                "PingFang SC", "AR PL UMing CN")


CJK_FILES = ("wqy", "notosanscjk", "notoserifcjk", "sourcehan", "droidsansfallback", "simhei", "msyh",
             "pingfang", "uming")


@cache
def cjk_font() -> str | None:
    """The family name of an installed font that has Chinese characters, if any (also
    one installed after matplotlib built its font cache)."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    known = next((family for family in CJK_FAMILIES if family in installed), None)
    if known:
        return known
    for path in font_manager.findSystemFonts():
        if any(mark in path.lower().replace("-", "").replace("_", "") for mark in CJK_FILES):
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    return None


def progress_chart(title: str, batches: list[tuple[str, list[tuple[str, int]]]]) -> bytes | None:
    """Stacked bars: one per batch, one segment per task state. None without a CJK font."""
    font = cjk_font()
    if font is None or not batches:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # a font with one weight is fine

    states = [state for state, _ in batches[0][1] if any(dict(counts)[state] for _, counts in batches)]
    figure = Figure(figsize=(8, 0.6 * len(batches) + 1.6), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.tick_params(labelfontfamily=font)
    lefts = [0] * len(batches)
    for state in states:
        values = [dict(counts)[state] for _, counts in batches]
        axes.barh([name for name, _ in batches], values, left=lefts, label=state)
        lefts = [a + b for a, b in zip(lefts, values, strict=True)]
    axes.set_title(title, fontfamily=font)
    axes.invert_yaxis()
    axes.legend(loc="lower right", ncols=min(len(states), 6), prop=FontProperties(family=font, size="small"))
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
