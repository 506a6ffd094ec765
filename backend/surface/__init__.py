"""Cortical surfaces and what is drawn on them.

* :mod:`.meshes` - ``Surface``/``Hemisphere`` containers, fsaverage5 (shipped in nilearn) and FreeSurfer loaders;
* :mod:`.rois` - NSD ROI files and names, our food ROI, display colours and orders (a leaf module);
* :mod:`.overlay` - the ``Overlay`` type every drawing function takes;
* :mod:`.wire` - the browser viewer's compact binary geometry files;
* :mod:`.viewer` - the viewer's overlay message and the vertex colouring shared with the figures;
* :mod:`.figures` - PyVista off-screen figures (ROI map, publication panel of any overlay).

Nothing here reads the workspace except ``workspace_surface`` (which surface a workspace lives on).
"""
from .meshes import Hemisphere, Surface, load_freesurfer_surface, load_fsaverage5, workspace_surface
from .overlay import Overlay
from .rois import ALL_ROI_FILES, EARLY_ROIS, HEMIS, ROI_COLOURS, ROI_FILES, ROI_ORDER
from .viewer import SHOW, VIEWS, viewer_message
from .wire import write_mesh_files

__all__ = ["Hemisphere", "Surface", "load_fsaverage5", "load_freesurfer_surface", "workspace_surface", "Overlay",
           "HEMIS", "ROI_FILES", "ALL_ROI_FILES", "ROI_COLOURS", "ROI_ORDER", "EARLY_ROIS", "VIEWS", "SHOW",
           "viewer_message", "write_mesh_files"]
