import streamlit as st

st.title("Feature_maps".replace("_", " ").title())
st.info("This page is not built yet (issue #4). Nothing here is faked: it will show real results once it lands.")
