import streamlit as st

st.title("Training".replace("_", " ").title())
st.info("This page is not built yet (issue #5). Nothing here is faked: it will show real results once it lands.")
