import streamlit as st

from ui.common import use_app_navigation

use_app_navigation()

st.title("Inception Explorer")
st.markdown(
    """
Understand, design and train **Inception (GoogLeNet)** networks, with every number computed from the real model.

### The Inception idea
Instead of choosing one kernel size per layer, an Inception block runs **four branches in parallel** on the same input
and lets training decide what each one is for:

| branch | path | sees |
|---|---|---|
| **b1** | 1×1 conv | a single position, mixes channels |
| **b2** | 1×1 conv → 3×3 conv | a medium neighbourhood |
| **b3** | 1×1 conv → 5×5 conv | a larger neighbourhood |
| **b4** | 3×3 max-pool → 1×1 conv | the strongest nearby response |

All branches keep the height and width (padding "same", pool stride 1), so their outputs can be
**concatenated along the channel axis**: an input H×W×C becomes **H×W×(C1+C2+C3+C4)**.

### Why the 1×1 convolutions
A 1×1 conv mixes channels at each position ("network in network"). Put in front of an expensive 3×3 or 5×5 conv
it first shrinks the channel count — a **bottleneck**:

- a 5×5 conv from 28×28×192 to 28×28×32 takes **120,422,400** multiplications; squeezing to 16 channels
  with a 1×1 conv first takes **12,443,648**, about a tenth (seed 002, Andrew Ng's example);
- a 3×3 conv from 192 to 128 channels has **221,184** weights; a 1×1 bottleneck to 96 first gives
  18,432 + 110,592 = **129,024** (seed 000);
- a 5×5 conv can itself be **factorised into two 3×3 convs** with the same receptive field:
  102,400 → 73,728 weights for 64→64 channels (seed 004).

GoogLeNet stacks nine such blocks (3a … 5b) with max-pools between the stages, and during training adds two
**auxiliary classifiers** after 4a and 4d whose loss counts with weight 0.3.
"""
)

st.subheader("Explore")
links = [
    (
        "pages/block_designer.py",
        "Block Designer",
        "Set a block's input and branch channels; see every shape, parameter and multiply-add live.",
    ),
    (
        "pages/network_explorer.py",
        "Network Explorer",
        "Walk through whole GoogLeNets layer by layer, with torchinfo's summary and plots.",
    ),
    (
        "pages/feature_maps.py",
        "Feature Maps",
        "Upload a photo and see what each branch of a pretrained GoogLeNet responds to.",
    ),
    (
        "pages/explain.py",
        "Explain",
        "Which branch of which block carries the evidence for a class: Grad-CAM, ablations, receptive fields.",
    ),
    ("pages/training.py", "Training", "Train a GoogLeNet and watch its curves live; stop, resume and compare runs."),
]
cols = st.columns(len(links))
for col, (path, title, text) in zip(cols, links):
    with col:
        st.page_link(path, label=title)
        st.caption(text)
