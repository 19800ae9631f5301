"""A chat in the terminal: the same commands, progress and results as the chat platforms.

Each input line is one message. Finished videos are written to a folder and their
paths printed; the result "buttons" are commands (`/reroll <job>` …). With stdin
not a terminal, it runs the lines and exits once every job it started is delivered
— a smoke test for a deployment.
"""

from __future__ import annotations

import asyncio
import getpass
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from bot.admin import AdminService
from bot.commands import Animate, CreateSingle, parse_command
from bot.domain import ChatRef, Job, Platform, Requester, ResultAction, UserRef
from bot.errors import BotError, InvalidInput
from bot.gate import Gatekeeper
from bot.ports import UNLIMITED, ChatBudget, Progress, VideoDelivery
from bot.service import GenerationService
from bot.text_options import ANIMATE_OPTIONS, COMMON_OPTIONS, CREATE_OPTIONS, parse_options
from bot.texts import help_text, job_details, job_line, progress_text

BUTTON_COMMANDS = {f"/{action.value}": action for action in ResultAction}
ADMIN_COMMANDS = frozenset(
    {"/quota", "/setquota", "/resetquota", "/ban", "/unban", "/filter", "/filtermode", "/modlog", "/stats", "/credits"}
)
ADMIN_HELP = """/quota — what you have left
Operators (BOT_ADMIN_IDS, e.g. console:<your login>):
/setquota <user> <n|unlimited> · /resetquota <user> · /ban <user> · /unban <user>
/filter add|remove|list|test <text> · /filtermode reject | strike [n] [hours] [minutes] | exempt on|off
/modlog · /stats [days] · /credits
<user> is telegram:<id>, discord:<id> or a console name."""


class ConsoleNotifier:
    """Prints events; copies finished videos to `output_dir`."""

    caption_limit = 4000

    def __init__(self, out: TextIO, output_dir: Path) -> None:
        self._out = out
        self._output_dir = output_dir
        self.settled = asyncio.Event()  # set whenever a job's outcome was shown

    def _say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def upload_limit(self, job: Job) -> int:
        return 4 * 1024**3  # a local file: no platform limit

    def chat_budget(self, chat: ChatRef) -> ChatBudget:
        return UNLIMITED  # a terminal takes every line at once

    async def progress(self, job: Job, progress: Progress) -> str | None:
        self._say(f"[{job.id}] {progress_text(job, progress)}")
        return None

    async def deliver(self, job: Job, delivery: VideoDelivery) -> None:
        buttons = " · ".join(
            f"/{a.value} {job.id}" + (" <new prompt>" if a is ResultAction.REMIX else "") for a in delivery.buttons
        )
        if delivery.file is not None:
            target = self._output_dir / f"{job.id}.mp4"
            if target.exists():
                # Placed by a run that stopped before recording the delivery: the file is
                # the delivery, so it is not announced twice.
                self.settled.set()
                return
            self._output_dir.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            await asyncio.to_thread(shutil.copyfile, delivery.file, partial)
            partial.replace(target)  # atomic: a file under the final name is always whole
            where = str(target)
        else:
            where = delivery.link or "(no link)"
        self._say(f"[{job.id}] ✅ Done: {where}\n{delivery.caption}\n  {buttons}")
        self.settled.set()

    async def failed(self, job: Job, reason: str) -> None:
        self._say(f"[{job.id}] ❌ {reason}")
        self.settled.set()

    async def alert_operator(self, text: str) -> None:
        self._say(f"[operator] ⚠️ {text}")


def parse_target(text: str) -> UserRef | None:
    """`telegram:123`, `discord:456` or a console user name; `group` (or nothing) means none."""
    text = text.strip()
    if not text or text.lower() == "group":
        return None
    platform, sep, user_id = text.partition(":")
    if sep and platform in {p.value for p in Platform}:
        return UserRef(Platform(platform), user_id, text)
    return UserRef(Platform.CONSOLE, text, text)


class ConsoleSession:
    def __init__(
        self,
        service: GenerationService,
        admin: AdminService,
        gate: Gatekeeper,
        notifier: ConsoleNotifier,
        out: TextIO,
        user: str | None = None,
    ) -> None:
        self._service = service
        self._admin = admin
        self._gate = gate
        self._notifier = notifier
        self._out = out
        name = user or getpass.getuser()
        self._requester = Requester(
            user=UserRef(Platform.CONSOLE, name, name), chat=ChatRef(Platform.CONSOLE, "console", is_private=True)
        )
        self.started: list[str] = []

    def _say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    async def handle(self, line: str) -> bool:
        """Run one input line; returns False on /quit."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        command, _, rest = line.partition(" ")
        command = command.lower()
        if command in {"/quit", "/exit"}:
            return False
        try:
            await self._gate.admit(self._requester)
            if command in {"/help", "/start"}:
                self._say(help_text() + "\n\n" + ADMIN_HELP)
            elif command == "/create_single":
                await self._create_single(rest)
            elif command == "/animate":
                await self._animate(rest)
            elif command in BUTTON_COMMANDS:
                await self._press(BUTTON_COMMANDS[command], rest)
            elif command == "/jobs":
                jobs = await self._service.recent_jobs(self._requester.user)
                self._say("\n".join(job_line(j) for j in jobs) or "No jobs yet.")
            elif command == "/status":
                self._say(job_details(await self._service.job_status(self._requester.user, rest)))
            elif command in ADMIN_COMMANDS:
                self._say(await self._admin_command(command, rest))
            else:
                self._say(f"Unknown command {command!r}. /help lists the commands.")
        except BotError as exc:
            if not exc.silent:
                self._say(f"⚠️ {exc}")
        return True

    async def _admin_command(self, command: str, rest: str) -> str:
        r, admin = self._requester, self._admin
        words = rest.split()
        first = words[0] if words else ""
        if command == "/quota":
            return await admin.quota(r)
        if command == "/setquota":
            if len(words) != 2:
                raise InvalidInput("setquota", "use /setquota <user> <n|unlimited> or /setquota group <n|off>")
            return await admin.set_quota(r, parse_target(first), words[1])
        if command == "/resetquota":
            return await admin.reset_quota(r, parse_target(first))
        if command in {"/ban", "/unban"}:
            target = parse_target(first)
            if target is None:
                raise InvalidInput("user", f"name one, e.g. {command} telegram:123")
            return await (admin.ban(r, target) if command == "/ban" else admin.unban(r, target))
        if command == "/filter":
            operation, _, text = rest.strip().partition(" ")
            return await admin.filter(r, operation or "list", text)
        if command == "/filtermode":
            return await admin.filter_mode(r, words)
        if command == "/modlog":
            return await admin.modlog(r)
        if command == "/stats":
            if first and not first.isdigit():
                raise InvalidInput("days", f"{first!r} is not a number of days")
            return await admin.stats(r, int(first) if first else 30)
        return await admin.credits(r)

    async def _create_single(self, text: str) -> None:
        prompt, options = parse_options(text, CREATE_OPTIONS + COMMON_OPTIONS)
        if not prompt:
            raise InvalidInput("prompt", "is missing; e.g. /create_single a fox running through snow --ar 9:16")
        job = await self._service.create_single(self._requester, parse_command(CreateSingle, prompt=prompt, **options))
        self.started.append(job.id)

    async def _animate(self, text: str) -> None:
        path_text, _, rest = text.strip().partition(" ")
        if not path_text:
            raise InvalidInput("image", "is missing; e.g. /animate photo.png smiling and blinking --motion 7")
        path = Path(path_text).expanduser()
        try:
            image = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise InvalidInput("image", f"cannot read {path}: {exc.strerror}") from None
        prompt, options = parse_options(rest, ANIMATE_OPTIONS + COMMON_OPTIONS)
        command = parse_command(Animate, prompt=prompt or None, **options)
        job = await self._service.animate(self._requester, command, image)
        self.started.append(job.id)

    async def _press(self, action: ResultAction, text: str) -> None:
        job_id, _, prompt = text.strip().partition(" ")
        if not job_id:
            raise InvalidInput("job", f"is missing; e.g. /{action.value} <job id>")
        job = await self._service.press(self._requester, job_id, action, prompt=prompt or None)
        self.started.append(job.id)

    async def wait_until_settled(self, is_settled: Callable[[], Awaitable[bool]], timeout: float) -> bool:
        """Wait until `is_settled()` (re-checked whenever an outcome is shown), or the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._notifier.settled.clear()
            if await is_settled():
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(min(remaining, 1.0)):
                    await self._notifier.settled.wait()
            except TimeoutError:
                pass


async def read_lines(stream: TextIO):
    """Lines from a (blocking) stream without blocking the event loop."""
    while True:
        line = await asyncio.to_thread(stream.readline)
        if not line:
            return
        yield line


async def run_console(core, *, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout, user: str | None = None) -> int:
    """Run the console chat on a started core; returns the process exit code."""
    notifier = ConsoleNotifier(out, core.settings.console_output_dir)
    core.notifiers.register(Platform.CONSOLE, notifier)
    await core.deliverer.deliver_pending()
    session = ConsoleSession(core.service, core.admin, core.gate, notifier, out, user)
    interactive = stdin.isatty()
    if interactive:
        print("PixVerse bot console. /help lists the commands, /quit leaves.", file=out, flush=True)
    async for line in read_lines(stdin):
        if not await session.handle(line):
            break

    async def nothing_pending() -> bool:
        return not await core.service.has_unfinished(Platform.CONSOLE)

    if not await nothing_pending():
        timeout = core.settings.job_timeout + core.settings.queue_timeout
        if not await session.wait_until_settled(nothing_pending, timeout):
            print("Gave up waiting for the remaining jobs; they resume on the next start.", file=out, flush=True)
            return 1
    return 0
