"""The unit picker: one branch's map as squares to click (Explain's receptive fields, Block Anatomy).

A small Streamlit v2 component instead of a plotly scatter: plotly draws one SVG path per point and remounts the
chart whenever its data changes, about 170 ms for a 28×28 map in Chromium (bench/perceived.py, a branch switch on
Anatomy); this draws the same squares as one SVG in a few milliseconds. A click, or Enter on the focused grid after
the arrow keys, sends the unit once (a trigger value, as a button's click): the page reads it with `clicked` before
its row and column inputs exist. The grid's data comes from gnet.charts.branches.unit_grid.
"""

from __future__ import annotations

import streamlit as st

_JS = """
export default function (component) {
  const { data, setTriggerValue, parentElement } = component;
  let root = parentElement.querySelector(".gnet-unit-picker");
  if (!root) {
    root = document.createElement("div");
    root.className = "gnet-unit-picker";
    parentElement.appendChild(root);
  }
  const { h, w, cell, fills, values, title, what, selected } = data;
  const ns = "http://www.w3.org/2000/svg";
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);
  const ox = 26, oy = 16;  // room for the column numbers above and the row numbers on the left
  const every = Math.max(h, w) > 16 ? 5 : 2;
  const parts = [];
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const i = r * w + c;
      parts.push(`<rect x="${ox + c * cell}" y="${oy + r * cell}" width="${cell}" height="${cell}" fill="${fills[i]}" ` +
                 `data-r="${r}" data-c="${c}"><title>row ${r}, col ${c}: ${esc(what)} ${values[i]}</title></rect>`);
    }
  }
  for (let c = 0; c < w; c += every) {
    parts.push(`<text x="${ox + (c + 0.5) * cell}" y="${oy - 4}" text-anchor="middle">${c}</text>`);
  }
  for (let r = 0; r < h; r += every) {
    parts.push(`<text x="${ox - 4}" y="${oy + (r + 0.5) * cell + 3.5}" text-anchor="end">${r}</text>`);
  }
  const [sr, sc] = selected;
  const mark = `<rect class="picked" x="${ox + sc * cell + 1.5}" y="${oy + sr * cell + 1.5}" width="${cell - 3}" ` +
               `height="${cell - 3}" fill="none" stroke="black" stroke-width="3"/>`;
  root.innerHTML =
    `<div class="title">${esc(title)}</div>` +
    `<svg xmlns="${ns}" width="${ox + w * cell}" height="${oy + h * cell}" ` +
    `viewBox="0 0 ${ox + w * cell} ${oy + h * cell}" tabindex="0" role="grid" ` +
    `aria-label="${esc(title)}; arrow keys move, Enter picks">${parts.join("")}${mark}</svg>` +
    `<div class="readout">row ${sr}, col ${sc}: ${esc(what)} ${values[sr * w + sc]}</div>`;
  const svg = root.querySelector("svg");
  const readout = root.querySelector(".readout");
  let cursor = [sr, sc];
  svg.onclick = (e) => {
    const t = e.target.closest("rect[data-r]");
    if (t) setTriggerValue("unit", [Number(t.dataset.r), Number(t.dataset.c)]);
  };
  svg.onmouseover = (e) => {
    const t = e.target.closest("rect[data-r]");
    if (t) readout.textContent = `row ${t.dataset.r}, col ${t.dataset.c}: ${what} ${values[t.dataset.r * w + Number(t.dataset.c)]}`;
  };
  svg.onkeydown = (e) => {
    const step = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]}[e.key];
    if (step) {
      cursor = [Math.min(h - 1, Math.max(0, cursor[0] + step[0])), Math.min(w - 1, Math.max(0, cursor[1] + step[1]))];
      const m = svg.querySelector(".picked");
      m.setAttribute("x", ox + cursor[1] * cell + 1.5);
      m.setAttribute("y", oy + cursor[0] * cell + 1.5);
      readout.textContent = `row ${cursor[0]}, col ${cursor[1]}: ${what} ${values[cursor[0] * w + cursor[1]]} (Enter picks)`;
      e.preventDefault();
    } else if (e.key === "Enter") {
      setTriggerValue("unit", cursor);
    }
  };
}
"""

_CSS = """
.gnet-unit-picker { font-family: var(--st-font, sans-serif); color: var(--st-text-color, #222); }
.gnet-unit-picker .title { font-size: 0.9rem; margin-bottom: 0.3rem; }
.gnet-unit-picker svg { display: block; max-width: 100%; height: auto; cursor: pointer; }
.gnet-unit-picker svg:focus { outline: 2px solid var(--st-primary-color, #ff4b4b); outline-offset: 2px; }
.gnet-unit-picker svg text { font-size: 10px; fill: currentColor; opacity: 0.7; }
.gnet-unit-picker rect[data-r]:hover { stroke: #555; stroke-width: 1; }
.gnet-unit-picker .readout { font-size: 0.8rem; opacity: 0.75; margin-top: 0.3rem; font-variant-numeric: tabular-nums; }
"""

_component = st.components.v2.component("gnet.unit_picker", js=_JS, css=_CSS)


def unit_picker(grid: dict, selected: tuple[int, int], key: str) -> None:
    """Draw the grid (gnet.charts.branches.unit_grid) with the picked unit outlined."""
    _component(key=key, data={**grid, "selected": [int(selected[0]), int(selected[1])]}, on_unit_change=lambda: None)


def clicked(key: str, hh: int, ww: int) -> tuple[int, int] | None:
    """The unit a click just sent, as (row, col) inside an hh × ww map; None without a click or for anything else."""
    state = st.session_state.get(key)
    unit = state.get("unit") if hasattr(state, "get") else None
    if not isinstance(unit, list | tuple) or len(unit) != 2:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in unit):
        return None
    r, c = unit
    return (r, c) if 0 <= r < hh and 0 <= c < ww else None
