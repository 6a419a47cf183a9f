import streamlit as st

st.title("Block_designer".replace("_", " ").title())
st.info("This page is not built yet (issue #3). Nothing here is faked: it will show real results once it lands.")
