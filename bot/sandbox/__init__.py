"""An offline implementation of the useapi.net PixVerse v2 API, with fault injection.

Tests run it in-process, operators run it with `pixverse-bot sandbox`, and the bot
uses it when no useapi.net token is configured. Videos are real, playable MP4s.
"""

from bot.sandbox.config import SandboxAccount, SandboxConfig
from bot.sandbox.core import Sandbox
from bot.sandbox.server import running_sandbox, serve

__all__ = ["Sandbox", "SandboxAccount", "SandboxConfig", "running_sandbox", "serve"]
