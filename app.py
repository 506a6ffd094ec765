"""VoxelScope: Streamlit entry point. Pages live in views/ (a folder named pages/ would switch Streamlit to
its older file-based multipage mode, which breaks deep links); all computation lives in backend/."""
import streamlit as st

st.set_page_config(page_title="VoxelScope", page_icon="🧠", layout="wide")

from views._auth import require_access  # noqa: E402

require_access()  # an OIDC sign-in or $VOXELSCOPE_PASSWORD when configured (serving on a network address needs one)

pages = [st.Page("views/home.py", title="Home", icon="🏠", default=True),
         st.Page("views/explorer.py", title="Cortex explorer", icon="🧠"),
         st.Page("views/captions.py", title="Voxel captions", icon="💬"),
         st.Page("views/attention.py", title="Attention maps", icon="🎯"),
         st.Page("views/synthesis.py", title="Synthesis", icon="🎨"),
         st.Page("views/reconstruction.py", title="Reconstruction", icon="🔁"),
         st.Page("views/simulate.py", title="Virtual experiment", icon="🧪")]
st.navigation(pages).run()
