"""Hostile names for the untrusted-text tests, and a check of what a page sends to the browser.

Every payload carries MARKER, so the strings that came from a hostile file can be found among everything an
AppTest page sent (each element's protobuf, every string field). Each such string is checked the way the
browser reads it:
- a markdown field (bodies, captions, alerts, labels, help, radio and select-slider options, metric values,
  image captions, progress text, toasts): no image, link, raw HTML, entity, autolink, Streamlit directive or
  maths may remain once the backslash-escaped characters are set aside;
- our own HTML (markdown with allow_html): one CommonMark HTML block (ui.common.show_html: the first tag alone
  on the first line, no blank line), so markdown is never parsed inside it; only the charts' own tags, and no
  URL or script in an attribute;
- a plotly figure: no plotly pseudo-HTML (<a href>, <b>, <span>, <img>) in a string that holds a name.
Plain-text fields (selectbox options, text-input values and placeholders, dataframe cells) are not markup.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from google.protobuf.json_format import MessageToDict
from streamlit.testing.v1 import AppTest

MARKER = "Zqx"
HOST = "evil.invalid"  # replaced by the loopback server's address in the browser test


def payloads(host: str = HOST) -> list[str]:
    """Markup variants, each at most 80 characters (a network name's limit; class names take 100)."""
    return [
        f"{MARKER}![t](http://{host}/md.png)",
        f"{MARKER}<img src=http://{host}/raw.png>",
        f"{MARKER}[x](javascript:alert(1))",
        f"{MARKER}<a href='http://{host}/a'>a</a>",
        f"{MARKER}\n\n![t](http://{host}/nl.png)",
        f"{MARKER}\\![t](http://{host}/bs.png)",
        f"{MARKER} :red[R] :material/home: :smile:",
        f"{MARKER} $x^2$ &lt;b&gt; &#60;i&#62;",
        f"{MARKER} http://{host}/auto www.evil.invalid a@{host}",
        f"{MARKER}<svg onload=alert(1)>**b** `c` _i_",
    ]


# Fields the frontend shows as plain text (checked in Chromium): markup there is shown as typed.
PLAIN_FIELDS = {
    ("Selectbox", "options"),
    ("MultiSelect", "options"),
    ("TextInput", "placeholder"),
    ("TextInput", "value"),
    ("TextInput", "default"),
    ("Selectbox", "placeholder"),
    ("MultiSelect", "default"),
}

_LIVE_MARKDOWN = [
    (r"!\[", "image"),
    (r"\]\(", "link"),
    (r"<[A-Za-z/!?]", "raw HTML"),
    (r"&#?\w+;", "HTML entity"),
    (r"(?i)\b(?:https?|javascript|mailto|xmpp|ftp):", "URL scheme"),
    (r"(?i)\bwww\.", "www autolink"),
    (r"\w@\w", "e-mail autolink"),
    (r":[\w/-]+\[", "Streamlit directive"),
    (r":\w+:", "emoji or icon shortcode"),
    (r"\$", "maths"),
]
_OUR_TAGS = {
    "div", "span", "b", "i", "br", "small", "table", "thead", "tbody", "tr", "th", "td", "svg", "g", "rect",
    "text", "tspan", "title", "line", "polyline", "polygon", "path", "circle", "ellipse", "defs", "lineargradient",
    "stop", "clippath", "style",
}  # fmt: skip


_URL_ATTRIBUTES = {"href", "src", "xlink:href", "srcset", "action", "formaction", "poster", "background", "xmlns"}


def _strings(value, path: str):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def sent(at: AppTest) -> list[tuple[str, str, str, dict]]:
    """(element type, field path, text, the element's fields) for every string holding MARKER."""
    out = []
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        fields = MessageToDict(proto)
        kind = type(proto).__name__
        for path, text in _strings(fields, kind):
            if MARKER in text:
                out.append((kind, path, text, fields))
    return out


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in _OUR_TAGS:
            self.problems.append(f"tag <{tag}>")
        for k, v in attrs:
            v = v or ""
            url = k in _URL_ATTRIBUTES or (k == "style" and "url(" in v.lower())
            if k.startswith("on") or url and not v.startswith("http://www.w3.org/"):
                self.problems.append(f"attribute {k}={v[:60]!r}")


def problems(kind: str, path: str, text: str, fields: dict) -> list[str]:
    """Why this string, as sent, would be live markup in the browser (empty: it is text)."""
    field = path.rsplit(".", 1)[-1].split("[")[0]
    if (kind, field) in PLAIN_FIELDS:
        return []
    if kind == "PlotlyChart":
        found = []
        spec = json.loads(fields.get("spec", "{}") or "{}")
        for p, s in _strings(spec, "spec"):
            # plotly's own HTML subset; the templates' trusted <br> and <extra> are not in it
            if MARKER in s and re.search(r"(?i)<\s*/?\s*(?:a|span|img|svg|b|i|em|sup|sub|s|u)\b", s):
                found.append(f"plotly pseudo-HTML in {p}: {s[:80]!r}")
        return found
    if kind == "Markdown" and fields.get("allowHtml"):
        found = []
        # a CommonMark HTML block: its first tag alone on the first line, and no blank line to end it early
        if not re.match(r"<[A-Za-z][^>\n]*>\n", text) or re.search(r"\n[ \t]*\n", text):
            found.append("HTML not shown through ui.common.show_html: markdown is parsed inside it")
        tags = _Tags()
        tags.feed(text)
        return found + tags.problems
    inert = re.sub(r"\\[!-/:-@\[-`{-~]", "\x00", text)  # an escaped character is that character, never syntax
    return [f"{what}: {text[:100]!r}" for pattern, what in _LIVE_MARKDOWN if re.search(pattern, inert)]


def live_markup(at: AppTest) -> list[str]:
    """Every place the page sent a hostile name as markup; [] when all of them are text."""
    found = []
    for kind, path, text, fields in sent(at):
        found += [f"{path}: {p}" for p in problems(kind, path, text, fields)]
    return found


# ---------------------------------------------------------------------------------------------------------------
# Hostile files in the project's real formats, written with the project's own writers


def hostile_run(root, name: str, names: list[str], host: str = HOST):
    """A finished run whose every file-borne text is hostile: the checkpoint's classes (10, one per output of the
    mini network) and network name, samples.pt's labels, status.json's state message, device and precision,
    config.json's network name, dataset and dataset notes, telemetry's block, branch and head names. Returns the
    run folder."""
    import dataclasses
    import io

    import torch

    from gnet import runs
    from gnet.checkpoints import Checkpoint, atomic_write_bytes, save_checkpoint
    from gnet.network import build
    from gnet.spec import mini

    classes = (names * 10)[:10]
    spec = dataclasses.replace(mini(), name=names[0][:80])
    run = runs.create(
        root / name,
        {
            "train": {"network": {"name": names[1 % len(names)]}, "dataset": names[2 % len(names)], "epochs": 1},
            "dataset_notes": [names[3 % len(names)]],
        },
    )
    torch.manual_seed(0)
    pre = {"image_size": [32, 32], "mean": [0.5] * 3, "std": [0.25] * 3, "in_channels": 3}
    save_checkpoint(
        run / "checkpoints" / "last.pt", Checkpoint(spec, build(spec).state_dict(), classes, pre, {"epoch": 1})
    )
    buf = io.BytesIO()
    x = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.save({"x": x, "y": torch.arange(8), "classes": classes}, buf)
    atomic_write_bytes(run / "samples.pt", buf.getvalue())
    runs.write_status(
        run, "finished", message=names[4 % len(names)], device=names[5 % len(names)], precision=names[6 % len(names)]
    )
    stats = {"out_rms": 1.0, "grad_rms": 0.1, "weight_norm": 2.0, "update_norm": 0.01}
    branches = {"inception3a": {"b1": stats, names[8 % len(names)]: stats}, names[9 % len(names)]: {"b1": stats}}
    aux = {"aux1": 0.4, names[7 % len(names)]: 0.5}
    records = [{"kind": "telemetry", "step": s, "loss": 1.0, "aux_loss": aux, "branches": branches} for s in (1, 2)]
    runs.append_jsonl(run / runs.TELEMETRY, records)  # a hand-edited telemetry file: names beside the real ones
    return run


def hostile_sweep(root, name: str, names: list[str]):
    """A sweep (written by gnet.sweeps.create, nothing started) whose base network is named names[0], then
    hand-edited: its dataset and recipe settings are names[1] and names[2]. Returns the sweep folder."""
    import dataclasses

    from gnet import runs, sweeps
    from gnet.spec import mini

    sweep = sweeps.create(
        root / name, dataclasses.replace(mini(), name=names[0][:80]), ["base"], sweeps.Settings(epochs=1)
    )
    data = runs.read_json(sweep.path / runs.SWEEP_FILE)
    data["settings"].update(dataset=names[1 % len(names)], recipe=names[2 % len(names)])
    runs.write_json(sweep.path / runs.SWEEP_FILE, data)
    return sweep.path
