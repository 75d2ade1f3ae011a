"""foveate: agentic multimodal question answering over large, detailed images."""

__version__ = "0.1.0"
