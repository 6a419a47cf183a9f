"""A BlockDesign (or two, or two networks) as a flat query-string dict, so a shared link reproduces a design.

Keys are short (the URL stays readable) and parsing is strict: a value that is
not a whole number, an unknown b3 variant or an out-of-range channel count
raises SpecError naming the field, never anything else. Keys that are not ours
are ignored, so other query parameters can live beside them.

`B3_VARIANTS` is the designer's one control for branch b3's convolution; it maps
to the two BlockSpec fields (b3_kernel, factorize) that describe it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import zlib
from collections.abc import Mapping, Sequence

from gnet.spec import NETWORK_PRESETS, BlockDesign, BlockSpec, NetworkSpec, SpecError, network_preset
from gnet.v3 import V3_PRESETS, InceptionV3Spec, network_from_json, v3_plan

# UI label -> (b3_kernel, factorize)
B3_VARIANTS: dict[str, tuple[int, bool]] = {
    "5×5 (paper)": (5, False),
    "two 3×3 (factorized 5×5)": (5, True),
    "3×3 (torchvision's pretrained)": (3, False),
}
# query key -> (BlockSpec field or input dim, label for messages)
_INTS: dict[str, str] = {
    "c": "input channels",
    "h": "input height",
    "w": "input width",
    "b1": "b1",
    "b2r": "b2_reduce",
    "b2": "b2",
    "b3r": "b3_reduce",
    "b3": "b3",
    "b4": "b4",
}
_B3_CODES = {"5": (5, False), "33": (5, True), "3": (3, False)}  # b3 query value -> (kernel, factorize)
KEYS: tuple[str, ...] = (*_INTS, "reduce", "b3v", "bn")


def b3_variant(spec: BlockSpec) -> str:
    """The B3_VARIANTS label of a spec's b3 branch."""
    for label, (k, f) in B3_VARIANTS.items():
        if (spec.b3_kernel, spec.factorize) == (k, f):
            return label
    raise SpecError(f"no b3 variant for kernel {spec.b3_kernel} factorize {spec.factorize}")


def design_to_query(design: BlockDesign, prefix: str = "") -> dict[str, str]:
    """prefix: a second design beside the page's own (the compare view pins design A under "a")."""
    c, h, w = design.input_shape
    b = design.block
    code = {v: k for k, v in _B3_CODES.items()}[(b.b3_kernel, b.factorize)]
    return {
        prefix + k: v
        for k, v in {
            "c": str(c),
            "h": str(h),
            "w": str(w),
            "b1": str(b.b1),
            "b2r": str(b.b2_reduce),
            "b2": str(b.b2),
            "b3r": str(b.b3_reduce),
            "b3": str(b.b3),
            "b4": str(b.b4),
            "reduce": "1" if b.reduce else "0",
            "b3v": code,
            "bn": "1" if b.batch_norm else "0",
        }.items()
    }


_ASCII_SPACE = " \t\r\n"
_WHOLE = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit() and int() also take '²', '٣', '１' (inconsistently)


def _one(params: Mapping[str, str | Sequence[str]], key: str) -> str:
    value = params[key]
    if not isinstance(value, str):  # st.query_params.to_dict() gives the last; a raw parse gives lists
        value = list(value)[-1] if len(value) else ""
    return str(value).strip(_ASCII_SPACE)


def _int(params: Mapping[str, str | Sequence[str]], key: str) -> int:
    text = _one(params, key)
    if not _WHOLE.fullmatch(text):
        raise SpecError(
            f"link parameter {key} ({_INTS[key]}) must be a whole number written with the digits 0-9, got {text[:20]!r}"
        )
    return int(text)


def _flag(params: Mapping[str, str | Sequence[str]], key: str, default: bool) -> bool:
    if key not in params:
        return default
    text = _one(params, key)
    if text not in ("0", "1"):
        raise SpecError(f"link parameter {key} must be 0 or 1, got {text[:20]!r}")
    return text == "1"


def has_design(params: Mapping[str, object], prefix: str = "") -> bool:
    return any(prefix + k in params for k in KEYS)


def design_from_query(params: Mapping[str, str | Sequence[str]], prefix: str = "") -> BlockDesign | None:
    """The design in a query string, None when it holds none of our keys.

    All numeric keys are required once any of ours is present; the variant
    keys default to the paper's block (reductions on, 5×5, no BatchNorm).
    Raises SpecError for anything invalid. prefix: read the design stored under prefixed keys.
    """
    if prefix:
        params = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
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
    block = BlockSpec(
        b1=n["b1"],
        b2_reduce=n["b2r"],
        b2=n["b2"],
        b3_reduce=n["b3r"],
        b3=n["b3"],
        b4=n["b4"],
        reduce=_flag(params, "reduce", True),
        b3_kernel=kernel,
        factorize=factorize,
        batch_norm=_flag(params, "bn", False),
    )
    return BlockDesign(block, (n["c"], n["h"], n["w"])).validate()


def with_b3_variant(spec: BlockSpec, label: str) -> BlockSpec:
    if label not in B3_VARIANTS:
        raise SpecError(f"unknown b3 variant {label!r}")
    kernel, factorize = B3_VARIANTS[label]
    return dataclasses.replace(spec, b3_kernel=kernel, factorize=factorize)


# ---------------------------------------------------------------------------
# Whole networks in a link (the Network Explorer's A/B comparison): a preset's name, or
# "z." + the spec's compact JSON, zlib-compressed and base64url-encoded (a GoogLeNet is ~1 kB, an Inception v3 ~2 kB).

NETWORK_KEYS = ("na", "nb")  # design A, design B (the page's own network)
MAX_LINK_CHARS = 16_000
MAX_LINK_JSON = 200_000


def network_to_query(spec: NetworkSpec | InceptionV3Spec) -> str:
    for name in NETWORK_PRESETS:
        if network_preset(name) == spec:
            return name
    for name, make in V3_PRESETS.items():
        if make() == spec:
            return name
    text = json.dumps(spec.to_dict(), separators=(",", ":")).encode()
    return "z." + base64.urlsafe_b64encode(zlib.compress(text, 9)).decode().rstrip("=")


def network_from_query(value: str | Sequence[str], key: str = "nb") -> NetworkSpec | InceptionV3Spec:
    """The network in a link value (a GoogLeNet or an Inception v3, told by its JSON's "family"); SpecError naming
    the key for anything that is not one."""
    text = (value if isinstance(value, str) else (list(value)[-1] if len(value) else "")).strip()
    if text in NETWORK_PRESETS:
        return network_preset(text)
    if text in V3_PRESETS:
        return V3_PRESETS[text]()
    if not text.startswith("z.") or len(text) > MAX_LINK_CHARS:
        raise SpecError(
            f"link parameter {key} must be a preset name ({', '.join([*NETWORK_PRESETS, *V3_PRESETS])}) or an "
            "encoded network (copy the whole link)"
        )
    try:
        packed = base64.urlsafe_b64decode(text[2:] + "=" * (-len(text[2:]) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_LINK_JSON)  # bounded: a small link cannot inflate to gigabytes
    except (ValueError, zlib.error):  # binascii.Error is a ValueError
        raise SpecError(f"link parameter {key} is damaged (copy the whole link)") from None
    if inflater.unconsumed_tail:
        raise SpecError(f"link parameter {key} holds more than {MAX_LINK_JSON:,} bytes; a network is a few kB")
    try:
        spec = network_from_json(raw)
        if isinstance(spec, InceptionV3Spec):
            v3_plan(spec)  # every layer fits (NetworkSpec.from_json checks its own)
        return spec
    except SpecError as e:
        raise SpecError(f"link parameter {key}: {e}") from None
