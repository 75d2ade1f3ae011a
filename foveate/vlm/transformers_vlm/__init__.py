"""The local backend: a VLM running in this process through Hugging Face transformers.

``model`` (``TransformersVLM``: loading, encoding, generate / score / yes-no), ``scoring`` (option
spellings, multi-token options), ``prefix_probes`` (probes sharing each view's encoding), ``relevance``
(attention maps), ``encoding`` (the processed batch and what it costs).
"""

from foveate.vlm.transformers_vlm.encoding import Encoded, default_device
from foveate.vlm.transformers_vlm.model import TransformersVLM

__all__ = ["Encoded", "TransformersVLM", "default_device"]
