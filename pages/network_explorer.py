import streamlit as st

st.title("Network_explorer".replace("_", " ").title())
st.info("This page is not built yet (issue #3). Nothing here is faked: it will show real results once it lands.")
