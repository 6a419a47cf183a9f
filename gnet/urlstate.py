"""A BlockDesign as a flat query-string dict, so a shared link reproduces a design.

Keys are short (the URL stays readable) and parsing is strict: a value that is
not a whole number, an unknown b3 variant or an out-of-range channel count
raises SpecError naming the field, never anything else. Keys that are not ours
are ignored, so other query parameters can live beside them.

`B3_VARIANTS` is the designer's one control for branch b3's convolution; it maps
to the two BlockSpec fields (b3_kernel, factorize) that describe it.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from gnet.spec import BlockDesign, BlockSpec, SpecError

# UI label -> (b3_kernel, factorize)
B3_VARIANTS: dict[str, tuple[int, bool]] = {
    "5×5 (paper)": (5, False),
    "two 3×3 (factorized 5×5)": (5, True),
    "3×3 (torchvision's pretrained)": (3, False),
}
# query key -> (BlockSpec field or input dim, label for messages)
_INTS: dict[str, str] = {
    "c": "input channels", "h": "input height", "w": "input width",
    "b1": "b1", "b2r": "b2_reduce", "b2": "b2", "b3r": "b3_reduce", "b3": "b3", "b4": "b4",
}
_B3_CODES = {"5": (5, False), "33": (5, True), "3": (3, False)}  # b3 query value -> (kernel, factorize)
KEYS: tuple[str, ...] = (*_INTS, "reduce", "b3v", "bn")


def b3_variant(spec: BlockSpec) -> str:
    """The B3_VARIANTS label of a spec's b3 branch."""
    for label, (k, f) in B3_VARIANTS.items():
        if (spec.b3_kernel, spec.factorize) == (k, f):
            return label
    raise SpecError(f"no b3 variant for kernel {spec.b3_kernel} factorize {spec.factorize}")


def design_to_query(design: BlockDesign) -> dict[str, str]:
    c, h, w = design.input_shape
    b = design.block
    code = {v: k for k, v in _B3_CODES.items()}[(b.b3_kernel, b.factorize)]
    return {
        "c": str(c), "h": str(h), "w": str(w),
        "b1": str(b.b1), "b2r": str(b.b2_reduce), "b2": str(b.b2), "b3r": str(b.b3_reduce), "b3": str(b.b3),
        "b4": str(b.b4), "reduce": "1" if b.reduce else "0", "b3v": code, "bn": "1" if b.batch_norm else "0",
    }


def _one(params: Mapping[str, str | Sequence[str]], key: str) -> str:
    value = params[key]
    if not isinstance(value, str):  # st.query_params.to_dict() gives the last; a raw parse gives lists
        value = list(value)[-1] if len(value) else ""
    return value.strip()


def _int(params: Mapping[str, str | Sequence[str]], key: str) -> int:
    text = _one(params, key)
    if not text.isdigit() or len(text) > 9:
        raise SpecError(f"link parameter {key} ({_INTS[key]}) must be a whole number, got {text[:20]!r}")
    return int(text)


def _flag(params: Mapping[str, str | Sequence[str]], key: str, default: bool) -> bool:
    if key not in params:
        return default
    text = _one(params, key)
    if text not in ("0", "1"):
        raise SpecError(f"link parameter {key} must be 0 or 1, got {text[:20]!r}")
    return text == "1"


def has_design(params: Mapping[str, object]) -> bool:
    return any(k in params for k in KEYS)


def design_from_query(params: Mapping[str, str | Sequence[str]]) -> BlockDesign | None:
    """The design in a query string, None when it holds none of our keys.

    All numeric keys are required once any of ours is present; the variant
    keys default to the paper's block (reductions on, 5×5, no BatchNorm).
    Raises SpecError for anything invalid.
    """
    if not has_design(params):
        return None
    missing = [k for k in _INTS if k not in params]
    if missing:
        raise SpecError(f"the link is incomplete: it lacks {', '.join(_INTS[k] for k in missing)}")
    n = {k: _int(params, k) for k in _INTS}
    code = _one(params, "b3v") if "b3v" in params else "5"
    if code not in _B3_CODES:
        raise SpecError(f"link parameter b3v must be one of {', '.join(_B3_CODES)}, got {code[:20]!r}")
    kernel, factorize = _B3_CODES[code]
    block = BlockSpec(n["b1"], n["b2r"], n["b2"], n["b3r"], n["b3"], n["b4"], reduce=_flag(params, "reduce", True),
                      b3_kernel=kernel, factorize=factorize, batch_norm=_flag(params, "bn", False))
    return BlockDesign(block, (n["c"], n["h"], n["w"])).validate()


def with_b3_variant(spec: BlockSpec, label: str) -> BlockSpec:
    if label not in B3_VARIANTS:
        raise SpecError(f"unknown b3 variant {label!r}")
    kernel, factorize = B3_VARIANTS[label]
    return dataclasses.replace(spec, b3_kernel=kernel, factorize=factorize)
