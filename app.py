"""VoxelScope: Streamlit entry point. Pages live in pages/; all computation lives in backend/."""
import streamlit as st

st.set_page_config(page_title="VoxelScope", page_icon="🧠", layout="wide")

pages = [st.Page("pages/home.py", title="Home", icon="🏠", default=True),
         st.Page("pages/cortex.py", title="Cortex explorer", icon="🧠", url_path="explorer")]
st.navigation(pages).run()
