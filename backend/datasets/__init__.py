"""Where data enters: stimuli, betas and ROI labels, from disk or from the demo world.

* :mod:`.nsd`, :mod:`.algonauts` - import the NSD release layout and the Algonauts 2023 layout (import only);
* :mod:`.betas` - the one preprocessing path (z-score per session, average repeats, NSD noise ceiling);
* :mod:`.subject` - the subject writer every dataset ends in;
* :mod:`.reading` - reading a workspace's dataset back (stimulus pixels, captions, betas, voxels);
* :mod:`.image_features` - pixel-level features (local contrast energy);
* :mod:`.demo` - the embedded synthetic world: procedural stimuli, synthetic subjects, the world builder,
  and its export to the NSD and Algonauts layouts.
"""
from .algonauts import AlgonautsFormatError, import_algonauts
from .nsd import ImportReport, NSDFormatError, import_nsd
from .reading import (captions, find_stimuli, sample_stimulus_ids, stimulus_images, stimulus_masks, subject_betas,
                      subject_voxels)

__all__ = ["import_nsd", "import_algonauts", "ImportReport", "NSDFormatError", "AlgonautsFormatError",
           "stimulus_images", "stimulus_masks", "find_stimuli", "captions", "subject_betas", "subject_voxels", "sample_stimulus_ids"]
