"""What one page hands to another, in typed functions over `st.session_state` (not a page).

Pages never read or write each other's session-state keys directly; they call these:

- Network Explorer → Training: the network being designed (`offer_network` / `designed_network`).
- Network Explorer ↔ Block Designer: one block to edit (`send_block` / `take_block`), which block of
  the explorer's network the designer is editing (`editing_block`), and the edited block back
  (`return_block`).
- Training → Feature Maps or Explain: a checkpoint to open (`send_checkpoint` / `requested_checkpoint`).

Every reader checks the type of what it finds, so a stale or foreign value is ignored, never used.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from gnet.spec import BlockDesign, BlockSpec, NetworkSpec

# The keys (kept from before this module, so links between pages and tests that seed them stay valid).
DESIGNED_NETWORK = "designed_network"
BLOCK_HANDOFF = "bd_handoff"
EDITING_BLOCK = "bd_network_block"
EXPLORER_NETWORK = "ne_network"  # the Network Explorer's own network
EXPLORER_BLOCK = "ne_block"  # the Network Explorer's block picker
CHECKPOINT = "{page}_checkpoint"  # per receiving page: "fm" (Feature Maps), "ex" (Explain), ...


@dataclass(frozen=True)
class BlockHandoff:
    """A block of the explorer's network, with its input shape there, for the Block Designer."""

    block: str  # "4a"
    design: BlockDesign


# -- Network Explorer → Training


def offer_network(spec: NetworkSpec | None) -> None:
    """The network the Training page offers to train; None withdraws it (an invalid network is not offered)."""
    if spec is None:
        st.session_state.pop(DESIGNED_NETWORK, None)
    else:
        st.session_state[DESIGNED_NETWORK] = spec


def designed_network() -> NetworkSpec | None:
    spec = st.session_state.get(DESIGNED_NETWORK)
    return spec if isinstance(spec, NetworkSpec) else None


# -- Network Explorer ↔ Block Designer


def send_block(block: str, design: BlockDesign) -> None:
    st.session_state[BLOCK_HANDOFF] = BlockHandoff(block, design)


def take_block() -> BlockHandoff | None:
    """The block sent by the Network Explorer, once (it is removed as it is read)."""
    handoff = st.session_state.pop(BLOCK_HANDOFF, None)
    return handoff if isinstance(handoff, BlockHandoff) else None


def set_editing_block(block: str | None) -> None:
    st.session_state[EDITING_BLOCK] = block


def editing_block() -> tuple[str, NetworkSpec] | None:
    """(block, the explorer's network) while the designer edits one of its blocks."""
    block, network = st.session_state.get(EDITING_BLOCK), explorer_network()
    if isinstance(block, str) and network is not None and block in network.block_names():
        return block, network
    return None


def explorer_network() -> NetworkSpec | None:
    spec = st.session_state.get(EXPLORER_NETWORK)
    return spec if isinstance(spec, NetworkSpec) else None


def return_block(block: str, spec: BlockSpec) -> None:
    """Put the edited block into the explorer's network and select it there; editing ends."""
    network = explorer_network()
    if network is not None:
        st.session_state[EXPLORER_NETWORK] = network.with_block(block, spec)
        st.session_state[EXPLORER_BLOCK] = block
    set_editing_block(None)


# -- Training → Feature Maps / Explain (`page` is the receiving page's widget-key prefix)


def send_checkpoint(path: str, page: str = "fm") -> None:
    st.session_state[CHECKPOINT.format(page=page)] = path


def requested_checkpoint(page: str = "fm") -> str | None:
    path = st.session_state.get(CHECKPOINT.format(page=page))
    return path if isinstance(path, str) and path else None
