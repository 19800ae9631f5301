"""What the Telegram adapter says that the core does not: menus, admin help, prompts for input.

The core's own wording (help, progress, job lines, refusals) lives in `bot.texts` and
`bot.errors`; this module only adds what is specific to Telegram's surface.
"""

from __future__ import annotations

from aiogram.types import BotCommand

from bot.domain import ResultAction

# Telegram's limits (Bot API): message text, media caption, callback-query alert.
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
ALERT_LIMIT = 200

USER_COMMANDS = (
    BotCommand(command="create_single", description="Make a video from text: /create_single <prompt> [options]"),
    BotCommand(command="animate", description="Bring a picture to life (send it with /animate as caption)"),
    BotCommand(
        command="frames", description="A video from a first to a last picture (an album of two, /frames as caption)"
    ),
    BotCommand(
        command="transition",
        description="A video through 2-7 pictures (an album, /transition --durations 3,2 as caption)",
    ),
    BotCommand(command="fusion", description="Fuse up to 3 pictures (an album, /fusion @pic1 hugs @pic2 as caption)"),
    BotCommand(command="modify", description="Change your own video (send it with /modify <the change> as caption)"),
    BotCommand(command="extend", description="Make your own video longer (send it with /extend [prompt] as caption)"),
    BotCommand(command="effects", description="Ready-made effects: /effects [words] lists and searches them"),
    BotCommand(command="effect", description="Apply an effect: a photo (or an album of two) with /effect <name>"),
    BotCommand(command="lipsync", description="Make a video speak: /lipsync <words> on one of my v5 videos or yours"),
    BotCommand(command="voices", description="The voices for --voice and lip-sync, with samples"),
    BotCommand(command="jobs", description="Your recent jobs"),
    BotCommand(command="queue", description="Your waiting jobs: place in line and when they may be ready"),
    BotCommand(command="cancel", description="Stop a job: /cancel <job>"),
    BotCommand(command="status", description="One job's state: /status <job>"),
    BotCommand(command="quota", description="What you have left"),
    BotCommand(command="help", description="Commands and options"),
    BotCommand(command="id", description="Your id and this chat's (for BOT_ADMIN_IDS)"),
)
ADMIN_COMMANDS = (
    BotCommand(command="setquota", description="/setquota <user> <n|unlimited> or /setquota group <n|off>"),
    BotCommand(command="resetquota", description="/resetquota <user> or /resetquota group"),
    BotCommand(command="ban", description="/ban <user>: keep someone from using the bot here"),
    BotCommand(command="unban", description="/unban <user>"),
    BotCommand(command="unmute", description="/unmute <user>: lift a strike mute and clear the strikes"),
    BotCommand(command="filter", description="/filter add|remove|list|test <text>"),
    BotCommand(
        command="filtermode", description="/filtermode reject | strike [limit] [hours] [minutes] | exempt on|off"
    ),
    BotCommand(command="modlog", description="Recent refused prompts"),
    BotCommand(command="stats", description="/stats [days]: jobs and credits per user"),
    BotCommand(command="credits", description="PixVerse credits (operators)"),
    BotCommand(command="bot", description="/bot on|off: switch the bot on or off in this group"),
)

HOW_TO_NAME_A_USER = (
    "name the user: reply to one of their messages with the command, give their numeric id "
    "(e.g. /ban 123456789), or pick them from the mention list so Telegram links their name"
    " — Telegram does not let bots look up @usernames"
)

ADMIN_HELP = """Admin commands (group admins for their group; operators everywhere):
/quota — what you (and this group's pool) have left
/setquota <user> <n|unlimited> — a member's quota (operators)
/setquota group <n|off> — this group's shared pool
/resetquota <user>|group — usage so far no longer counts
/ban <user> · /unban <user> · /unmute <user> (lifts a strike mute, clears the strikes)
/filter add|remove|list|test <text> — this group's blocked words
/filtermode reject | strike [limit] [hours] [minutes] | exempt on|off
/modlog · /stats [days] · /credits (operators)
/bot on|off — switch the bot on or off in this group
<user>: reply to their message, give their numeric id, or pick them from the mention list."""

PRIVATE_FALLBACK = (
    "I make videos. Try /create_single a fox running through snow, or send a picture with the caption /animate. "
    "/help lists everything."
)

BUTTON_LABELS = {
    ResultAction.REROLL: "🔄 Reroll",
    ResultAction.REMIX: "🔀 Remix",
    ResultAction.UPSCALE: "⬆️ Upscale",
    ResultAction.EXTEND: "➕ Extend",
    ResultAction.MODIFY: "✏️ Modify",
    ResultAction.LIPSYNC: "🗣 Lip-sync",
}
BUTTON_CONFIRMATIONS = {
    ResultAction.REROLL: "Rerolling…",
    ResultAction.UPSCALE: "Upscaling…",
    ResultAction.EXTEND: "Extending…",
}
CANCEL_LABEL = "✖️ Cancel"
STALE_BUTTON = "This button no longer works."

USAGE = {
    "create_single": "Usage: /create_single <prompt> [--style anime] [--ar 9:16] [--seed 42] … "
    "— /help lists every option.",
    "cancel": "Usage: /cancel <job> — the job id /jobs and /queue show (e.g. /cancel abc123).",
    "animate": "Usage: send a picture with the caption /animate [prompt] [--motion 7] [--hd yes] …, "
    "or reply /animate to a picture — /help lists every option.",
}

APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
STATUS_DONE = "✅ Done"
STATUS_FAILED = "❌ Not made"
CANCELLED_MARK = "✖️"
# A video was made, but posting it kept failing (the core gave up; its message has the link).
STATUS_NOT_POSTED = "⚠️ Video made, but not posted here"


def video_link_text(caption: str, link: str | None) -> str:
    """A finished video that could not be uploaded: its caption and where to get it."""
    where = f"🔗 Too large to upload here; download it: {link}" if link else "🔗 Too large to upload here."
    return f"{caption}\n\n{where}"


def split_message(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Cut a long reply into messages Telegram accepts, at line breaks where possible."""
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        cut = cut if cut > 0 else limit
        parts.append(text[:cut])
        text = text[cut:].lstrip("\n")
    return [*parts, text] if text else parts
