"""One colour per branch, the same in every chart, diagram and mosaic frame.

Okabe–Ito colours: distinguishable with the common colour-vision deficiencies
and readable on both light and dark themes.
"""

BRANCH_COLORS: dict[str, str] = {
    "b1": "#0072B2",  # blue: 1×1
    "b2": "#E69F00",  # orange: 1×1 → 3×3
    "b3": "#009E73",  # green: 1×1 → 5×5 (or its factorised / 3×3 form)
    "b4": "#CC79A7",  # purple: 3×3 max-pool → 1×1
}
OTHER_COLOR = "#8C8C8C"  # stem, pools, head
