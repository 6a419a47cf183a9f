"""Charts and tables, one module per concern; none imports torch or streamlit.

- `svg`: the inline-SVG primitives (document, text, the theme's muted ink);
- `branches`: the drawings every per-branch view shares: the blocks × branches grid, the share bars, the unit grid;
- `block`: the Block Designer's diagram, share bars and tables;
- `network`: the Network Explorer's layer table and depth, cost, parameter and receptive-field figures;
- `training`: training curves and the comparison of runs;
- `telemetry`: per-block, per-branch training telemetry;
- `explain`: what a network does with an image (Explain's grids and maps, Feature Maps' bars, Atlas' heatmap);
- `anatomy`: one unit's chain through its branch, layer by layer, and its animation;
- `compare`: A/B comparisons and sweeps;
- `tables`: HTML and CSV tables and the shape notation they print.

They read `gnet.analysis` reports, `gnet.compare` comparisons and plain numbers, return plotly figures, SVG or HTML
strings, PIL images (drawn with `gnet.raster`) and lists of row dicts, and give each branch its colour from
`gnet.colors`. Plotly figures leave fonts and backgrounds to the Streamlit theme (light and dark).

Conventions shown to users: shapes are printed H×W×C (the seeds' notation) unless a column says C×H×W; mult-adds
follow torchinfo; multiplications are the seeds' hand count (no bias); FLOPs = 2 × multiplications.
"""
