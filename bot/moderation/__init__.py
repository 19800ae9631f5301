"""Prompt moderation: blocklists that group admins and the operator control.

Pure logic: entries are parsed and compiled here; where they are stored and when
they are checked is the service layer's business.
"""

from bot.moderation.normalize import normalize
from bot.moderation.rules import (
    Blocklist,
    InvalidRule,
    Rule,
    RuleKind,
    RuleMatch,
    load_default_blocklist,
    parse_entry,
)

__all__ = [
    "Blocklist",
    "InvalidRule",
    "Rule",
    "RuleKind",
    "RuleMatch",
    "load_default_blocklist",
    "normalize",
    "parse_entry",
]
