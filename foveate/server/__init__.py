"""``foveate serve``: foveate behind the OpenAI chat-completions API, so that tools which already speak it
(chat front-ends, LangChain / LlamaIndex / pydantic-ai apps, evaluation harnesses) get zoom search, a token
budget and abstention in front of any VLM.

``protocol`` holds the request and response models (OpenAI's format, plus a documented ``foveate`` object);
``limits`` what a request may ask for and the server's own caps; ``app`` the FastAPI application.
"""

from foveate.server.app import create_app
from foveate.server.limits import ServerLimits
from foveate.server.namespaces import AgentsByNamespace
from foveate.server.protocol import ChatRequest, ChatResponse, FoveateReply, FoveateRequest

__all__ = [
    "AgentsByNamespace",
    "ChatRequest",
    "ChatResponse",
    "FoveateReply",
    "FoveateRequest",
    "ServerLimits",
    "create_app",
]
