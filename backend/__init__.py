"""VoxelScope backend: data, models, methods and the workspace store. No Streamlit import here."""
__version__ = "0.1.0"
