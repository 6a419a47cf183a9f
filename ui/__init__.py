"""The Streamlit helpers the pages share (not pages themselves: app.py lists the pages in pages/).

common: run_page, the device badge, plain() for untrusted text, show_html for our charts, page links.
sources: the model-source and image pickers. handoff: typed state passed between pages in the URL.
download_panel: the weights download's progress. explain_data: Explain's cached computations.
compare_sections: the Compare and Sweep sections. forms: the block editor and option widgets.
export_buttons: Download ONNX / .pt2. anatomy_link: links onto Block Anatomy. v3_designer: the Inception v3 designer.
"""
