"""Inception Explorer: `streamlit run app.py`."""

import streamlit as st

from ui.common import device_badge, run_page

st.set_page_config(page_title="Inception Explorer", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page(
        "pages/block_designer.py", title="Block Designer", icon=":material/view_column:", url_path="block_designer"
    ),
    st.Page(
        "pages/network_explorer.py",
        title="Network Explorer",
        icon=":material/account_tree:",
        url_path="network_explorer",
    ),
    st.Page("pages/feature_maps.py", title="Feature Maps", icon=":material/image_search:", url_path="feature_maps"),
    st.Page("pages/explain.py", title="Explain", icon=":material/psychology:", url_path="explain"),
    st.Page("pages/anatomy.py", title="Block Anatomy", icon=":material/biotech:", url_path="anatomy"),
    st.Page("pages/training.py", title="Training", icon=":material/monitoring:", url_path="training"),
    st.Page("pages/atlas.py", title="Channel Atlas", icon=":material/grid_view:", url_path="atlas"),
]

page = st.navigation(PAGES)
device_badge()
run_page(page)
