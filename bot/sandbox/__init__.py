"""An offline implementation of the useapi.net PixVerse v2 API, with fault injection.

Tests run it in-process, operators run it with `pixverse-bot sandbox`, and the bot
uses it when no useapi.net token is configured. Videos are real, playable MP4s.
"""

from importlib.util import find_spec

_MISSING = [name for name in ("av", "numpy") if find_spec(name) is None]
if _MISSING:
    # Said once, in words an operator can act on, wherever the sandbox is started.
    raise ModuleNotFoundError(
        f"the built-in sandbox needs {' and '.join(_MISSING)}, which are not installed: "
        "install the bot with its sandbox extra, pip install 'pixverse-bot[sandbox]' "
        '(in a checkout: pip install ".[sandbox]")',
        name=_MISSING[0],
    )

from bot.sandbox.config import SandboxAccount, SandboxConfig  # noqa: E402
from bot.sandbox.core import Sandbox  # noqa: E402
from bot.sandbox.server import running_sandbox, serve  # noqa: E402

__all__ = ["Sandbox", "SandboxAccount", "SandboxConfig", "running_sandbox", "serve"]
