"""A chat in the terminal: the same commands, progress and results as the chat platforms.

Each input line is one message and gets an answer. Finished videos are written to a
folder and their paths printed; the result "buttons" are commands (`/reroll <job>` …).
With stdin not a terminal, it runs the lines and exits once every job it started is
delivered — a smoke test for a deployment, whose exit code says whether every command
and job succeeded. The console is the operator's own terminal: no anti-flood here.
Interactively it shows a prompt, keeps what you are typing intact when progress
lines arrive, and leaves at once on /quit or Ctrl-C (unfinished jobs resume on the
next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.admin import AdminService
from bot.cancellation import JobControl
from bot.commands import parse_command
from bot.domain import ChatRef, Job, JobState, Platform, Requester, ResultAction, UserRef
from bot.errors import BotError, InvalidInput
from bot.gate import Gatekeeper
from bot.kinds import GenerationKind, kind_named
from bot.ports import UNLIMITED, ChatBudget, Posted, Progress, VideoDelivery
from bot.ranges import MODLOG_ENTRIES, STATS_DAYS
from bot.service import GenerationService
from bot.text_options import VOICE_OPTION, parse_options
from bot.texts import help_text, job_details, job_line, progress_text, queue_text, voices_text

if TYPE_CHECKING:
    from bot.bootstrap import Core

BUTTON_COMMANDS = {f"/{action.value}": action for action in ResultAction}
# What a button that takes text wants after the job id, as the buttons line shows it.
TEXT_WANTED = {
    ResultAction.REMIX: " <new prompt>",
    ResultAction.MODIFY: " <the change>",
    ResultAction.LIPSYNC: " <words> [--voice NAME] | <audio file>",
}
ADMIN_COMMANDS = frozenset(
    {
        "/quota",
        "/setquota",
        "/resetquota",
        "/ban",
        "/unban",
        "/unmute",
        "/filter",
        "/filtermode",
        "/modlog",
        "/stats",
        "/credits",
        "/bot",
    }
)
ADMIN_HELP = """/quota — what you have left
Operators (BOT_ADMIN_IDS, e.g. console:<your login>):
/setquota <user> <n|unlimited> · /resetquota <user> · /ban <user> · /unban <user> · /unmute <user>
/filter add|remove|list|test <text> · /filtermode reject | strike [n] [hours] [minutes] | exempt on|off
/modlog [entries] · /stats [days] · /credits
<user> is telegram:<id>, discord:<id> or a console name."""


PROMPT = "pixverse> "


# Effects listed at once by /effects (a terminal needs no paging).
CONSOLE_EFFECTS_PAGE = 1000


class Terminal:
    """Where the console writes. Interactively, a line printed while the user is typing
    is put above the prompt, and the prompt with the half-typed text is drawn again."""

    def __init__(self, out: TextIO, *, interactive: bool) -> None:
        self._out = out
        self._interactive = interactive

    def say(self, text: str) -> None:
        if not self._interactive:
            print(text, file=self._out, flush=True)
            return
        typed = _typed_so_far()
        # \r and "erase line" remove the prompt line; the prompt comes back under the text.
        self._out.write(f"\r\x1b[K{text}\n{PROMPT}{typed}")
        self._out.flush()


def _typed_so_far() -> str:
    try:
        import readline
    except ImportError:  # not on every platform; then the typed text is not redrawn
        return ""
    return readline.get_line_buffer()


class ConsoleNotifier:
    """Prints events; copies finished videos to `output_dir`."""

    caption_limit = 4000

    def __init__(self, terminal: Terminal, output_dir: Path) -> None:
        self._terminal = terminal
        self._output_dir = output_dir
        self.settled = asyncio.Event()  # set whenever a job's outcome was shown
        self.failed_jobs = 0

    def _say(self, text: str) -> None:
        self._terminal.say(text)

    def video_file(self, job_id: str) -> Path | None:
        """The delivered video's local file, if it is there."""
        target = self._output_dir / f"{job_id}.mp4"
        return target if target.is_file() else None

    def upload_limit(self, job: Job) -> int:
        return 4 * 1024**3  # a local file: no platform limit

    def chat_budget(self, chat: ChatRef) -> ChatBudget:
        return UNLIMITED  # a terminal takes every line at once

    def budget_scope(self, job: Job) -> str:
        return job.chat.chat_id

    async def progress(self, job: Job, progress: Progress) -> str | None:
        self._say(f"[{job.id}] {progress_text(job, progress)}")
        return None

    async def deliver(self, job: Job, delivery: VideoDelivery) -> Posted:
        buttons = " · ".join(f"/{a.value} {job.id}" + TEXT_WANTED.get(a, "") for a in delivery.buttons)
        if delivery.file is not None:
            target = self._output_dir / f"{job.id}.{delivery.extension}"
            if target.exists():
                # Placed by a run that stopped before recording the delivery: the file is
                # the delivery, so it is not announced twice.
                self.settled.set()
                return Posted(message_ids=(str(target),))
            self._output_dir.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".part")
            await asyncio.to_thread(shutil.copyfile, delivery.file, partial)
            partial.replace(target)  # atomic: a file under the final name is always whole
            where = str(target)
        else:
            where = delivery.link or "(no link)"
        self._say(f"[{job.id}] ✅ Done: {where}\n{delivery.caption}\n  {buttons}")
        self.settled.set()
        return Posted(message_ids=(where,))

    async def failed(self, job: Job, reason: str) -> Posted:
        if job.outcome is JobState.CANCELLED:
            self._say(f"[{job.id}] ✖️ {reason}")  # asked for: not a failure of the run
        else:
            self._say(f"[{job.id}] ❌ {reason}")
            self.failed_jobs += 1
        self.settled.set()
        return Posted()

    async def finish(self, job: Job, posted: Posted) -> None:
        """Nothing to finish: progress lines are never edited, the outcome's line is the last."""

    async def alert_operator(self, text: str) -> None:
        self._say(f"[operator] ⚠️ {text}")


def parse_target(text: str) -> UserRef | None:
    """`telegram:123`, `discord:456` or a console user name; `group` (or nothing) means none."""
    text = text.strip()
    if not text or text.lower() == "group":
        return None
    platform, sep, user_id = text.partition(":")
    if sep and platform in {p.value for p in Platform}:
        return UserRef(Platform(platform), user_id)  # no name given: answers use the last one seen
    return UserRef(Platform.CONSOLE, text, text)


class ConsoleSession:
    def __init__(
        self,
        service: GenerationService,
        control: JobControl,
        admin: AdminService,
        gate: Gatekeeper,
        notifier: ConsoleNotifier,
        terminal: Terminal,
        user: str | None = None,
    ) -> None:
        self._service = service
        self._control = control
        self._admin = admin
        self._gate = gate
        self._notifier = notifier
        self._terminal = terminal
        name = user or getpass.getuser()
        self._requester = Requester(
            user=UserRef(Platform.CONSOLE, name, name), chat=ChatRef(Platform.CONSOLE, "console", is_private=True)
        )
        self.started: list[str] = []
        self.refused = 0  # commands answered with an error

    def _say(self, text: str) -> None:
        self._terminal.say(text)

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
            # A mute never blocks an admin command (whether the user may is the command's own check).
            await self._gate.admit(self._requester, admin_command=command in ADMIN_COMMANDS, rate_limited=False)
            if command in {"/help", "/start"}:
                self._say(help_text(catalogue=self._service.catalogue) + "\n\n" + ADMIN_HELP)
            elif command == "/lipsync":  # a button too, but with words or an audio file
                await self._lipsync(rest)
            elif command in BUTTON_COMMANDS and not _names_a_file(rest):
                # /extend and /modify are buttons (a job id) and commands (a video file) both.
                await self._press(BUTTON_COMMANDS[command], rest)
            elif (kind := kind_named(command.removeprefix("/"))) is not None:
                await self._generate(kind, rest)
            elif command == "/voices":
                self._say(voices_text(await self._service.voices.all()))
            elif command == "/effects":
                # A terminal scrolls: every match on one page.
                effects = self._service.effects
                self._say(effects.page_text(await effects.page(rest, 0, CONSOLE_EFFECTS_PAGE)))
            elif command == "/id":
                self._say(self._admin.ids(self._requester))
            elif command == "/jobs":
                jobs = await self._service.recent_jobs(self._requester.user)
                self._say("\n".join(job_line(j) for j in jobs) or "No jobs yet.")
            elif command == "/status":
                job = await self._service.job_status(self._requester.user, rest)
                file = self._notifier.video_file(job.id)
                self._say(job_details(job, video=str(file) if file else None))
            elif command == "/queue":
                self._say(queue_text(await self._control.queue(self._requester)))
            elif command == "/cancel":
                self._say(await self._control.cancel(self._requester, rest))
            elif command in ADMIN_COMMANDS:
                self._say(await self._admin_command(command, rest))
            else:
                self.refused += 1
                self._say(f"Unknown command {command!r}. /help lists the commands.")
        except BotError as exc:
            self.refused += 1
            # Nothing is silent in the operator's own terminal: every line gets an answer.
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
        if command in {"/ban", "/unban", "/unmute"}:
            target = parse_target(first)
            if target is None:
                raise InvalidInput("user", f"name one, e.g. {command} telegram:123")
            act = {"/ban": admin.ban, "/unban": admin.unban, "/unmute": admin.unmute}[command]
            return await act(r, target)
        if command == "/filter":
            operation, _, text = rest.strip().partition(" ")
            return await admin.filter(r, operation or "list", text)
        if command == "/filtermode":
            return await admin.filter_mode(r, words)
        if command == "/modlog":
            return await admin.modlog(r, MODLOG_ENTRIES.parse(first) if first else 20)
        if command == "/stats":
            return await admin.stats(r, STATS_DAYS.parse(first) if first else 30)
        if command == "/bot":
            if first.lower() not in {"on", "off"}:
                raise InvalidInput("bot", "use /bot on or /bot off")
            return await admin.set_bot_enabled(r, first.lower() == "on")
        return await admin.credits(r)

    async def _generate(self, kind: GenerationKind, text: str) -> None:
        """`/<kind> [picture paths] [prompt] [options]`: a kind with pictures takes their paths first."""
        images: list[bytes] = []
        paths: list[str] = []  # the files typed before the prompt: pictures, or the video
        if kind.pictures is not None:
            words = text.strip().split(" ") if text.strip() else []
            # Every leading file is a picture, however many: one too many is refused with
            # what the kind takes, never quietly read as the start of the prompt.
            while words and _looks_like_a_path(words[0], len(paths)):
                paths.append(words.pop(0))
            text = " ".join(words)
            if not paths:
                examples = " ".join(f"picture{n + 1}.png" for n in range(kind.pictures.required))
                raise InvalidInput(
                    "image", f"is missing; e.g. /{kind.name} {examples} {kind.example.partition(' ')[2]}"
                )
            kind.pictures.check(len(paths), kind.name)
            images = [await _read_file(path, "image") for path in paths]
        video: bytes | None = None
        if kind.takes_video:
            path, _, text = text.strip().partition(" ")
            if not path:
                raise InvalidInput("video", f"is missing; e.g. /{kind.name} clip.mp4 {kind.example.partition(' ')[2]}")
            video = await _read_file(path, "video")
            paths.append(path)
        parsed = parse_options(text, kind.all_options)
        if kind.prompt_required and not parsed.prompt:
            # The example as the console takes it: after the files the user typed.
            example = " ".join([f"/{kind.name}", *paths, kind.example.partition(" ")[2]])
            raise InvalidInput(kind.prompt_name, f"is missing; e.g. {example}")
        with parsed.in_users_words():
            command = parse_command(
                kind.command, self._service.catalogue, prompt=parsed.prompt or None, **parsed.values
            )
            job = await self._service.generate(self._requester, kind, command, images, video)
        self.started.append(job.id)

    async def _press(self, action: ResultAction, text: str) -> None:
        job_id, _, prompt = text.strip().partition(" ")
        if not job_id:
            raise InvalidInput("job", f"is missing; e.g. /{action.value} <job id>")
        # A typed id may be mistyped, unlike a button's: "not found" (with /jobs) says so,
        # where press() would take a missing job for one deleted after its retention.
        await self._service.job_status(self._requester.user, job_id)
        job = await self._service.press(self._requester, job_id, action, prompt=prompt or None)
        self.started.append(job.id)

    async def _lipsync(self, text: str) -> None:
        """`/lipsync <job | video file> <words> [--voice NAME]`, or `… <audio file>`: one of
        the bot's videos by its job id, or the user's own video by its path."""
        target, _, rest = text.strip().partition(" ")
        if not target:
            raise InvalidInput("job", "is missing; e.g. /lipsync <job id> Hello there --voice Emily")
        job_id: str | None = None if _names_a_file(target) else target
        audio_path = rest.strip().split(" ", 1)[0]
        has_audio = bool(audio_path) and _names_a_file(audio_path)
        if has_audio:
            rest = rest.strip()[len(audio_path) :]
        parsed = parse_options(rest, (VOICE_OPTION,))
        with parsed.in_users_words():
            self._service.check_lipsync(job_id, video=job_id is None, text=parsed.prompt, audio=has_audio)
            if job_id is not None:
                await self._service.job_status(self._requester.user, job_id)  # a mistyped id says "not found"
            video = await _read_file(target, "video") if job_id is None else None
            audio = await _read_file(audio_path, "audio") if has_audio else None
            voice = parsed.values.get("voice")
            job = await self._service.lipsync(
                self._requester,
                job_id,
                video=video,
                text=parsed.prompt,
                voice=str(voice) if voice else None,
                audio=audio,
            )
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


def _looks_like_a_path(word: str, taken: int) -> bool:
    """The first word is always the picture's path; later ones when they name a file."""
    return taken == 0 or Path(word).expanduser().is_file()


# What the name of a video or audio file the console takes ends with. A first word ending
# so names a file even when there is none (a typo): it is refused as unreadable, never
# looked up as a job id nor spoken as the words of a lip-sync.
MEDIA_FILE_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".wav"})


def _names_a_file(text: str) -> bool:
    first = text.strip().partition(" ")[0]
    if not first:
        return False
    path = Path(first).expanduser()
    return path.suffix.lower() in MEDIA_FILE_SUFFIXES or path.is_file()


async def _read_file(path_text: str, field: str) -> bytes:
    path = Path(path_text).expanduser()
    try:
        return await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise InvalidInput(field, f"cannot read {path}: {exc.strerror}") from None
    except ValueError:  # a NUL in the path: no file has such a name
        raise InvalidInput(field, f"cannot read {path!r}: no file has such a name") from None


def _read_lines_in_background(stream: TextIO, interactive: bool) -> asyncio.Queue[str | None]:
    """Lines from a blocking stream, through a queue; None at the end of input.

    A daemon thread reads, so Ctrl-C or /quit never waits for a line that is not coming
    (a thread blocked in readline cannot be cancelled, and the event loop's own executor
    would make the process wait for it at exit).
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def post(line: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed first: nobody is listening
            loop.call_soon_threadsafe(lines.put_nowait, line)

    def read() -> None:
        if interactive:
            # Loaded, readline gives line editing and history, and input() writes its prompt
            # to the terminal (without it, Python writes the prompt to stderr).
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401
        while True:
            try:
                line = input(PROMPT) + "\n" if interactive else stream.readline()
            except EOFError:
                line = ""
            except (OSError, ValueError):  # the stream was closed under us
                line = ""
            if not line:
                post(None)
                return
            post(line)

    threading.Thread(target=read, name="console-input", daemon=True).start()
    return lines


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


async def run_console(
    core: Core,
    *,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    user: str | None = None,
    handle_signals: bool = False,
) -> int:
    """Run the console chat on a started core; returns the process exit code.

    0: every command was accepted and every job delivered; 1: something was refused or
    failed (or jobs were left unfinished); 130: stopped by Ctrl-C.
    """
    interactive = stdin.isatty()
    terminal = Terminal(out, interactive=interactive)
    notifier = ConsoleNotifier(terminal, core.settings.console_output_dir)
    core.notifiers.register(Platform.CONSOLE, notifier)
    await core.deliverer.deliver_pending()
    session = ConsoleSession(core.service, core.control, core.admin, core.gate, notifier, terminal, user)
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        return await _converse(core, session, notifier, stdin, out, interactive, interrupted)
    finally:
        if handle_signals:
            loop.remove_signal_handler(signal.SIGINT)


async def _converse(
    core: Core,
    session: ConsoleSession,
    notifier: ConsoleNotifier,
    stdin: TextIO,
    out: TextIO,
    interactive: bool,
    interrupted: asyncio.Event,
) -> int:
    def tell(text: str) -> None:
        # Below the prompt line, not through the terminal: no prompt is drawn after this.
        print(("\n" if interactive else "") + text, file=out, flush=True)

    async def unfinished() -> int:
        return int(await core.service.unfinished(Platform.CONSOLE))

    async def stop_now() -> int:
        left = await unfinished()
        if left:
            tell(f"Stopped. {_jobs(left)} unfinished; they resume on the next start.")
        else:
            tell("Stopped.")
        return 130

    async def until(awaitable: Awaitable[object]) -> bool:
        """Wait for `awaitable`; False when Ctrl-C came first."""
        work = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(interrupted.wait())
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if work.done():
            work.result()
            return True
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        return False

    if interactive:
        print("PixVerse bot console. /help lists the commands, /quit or Ctrl-C leaves.", file=out, flush=True)
    lines = _read_lines_in_background(stdin, interactive)
    quit_asked = False
    while True:
        next_line = asyncio.ensure_future(lines.get())
        if not await until(next_line):
            return await stop_now()
        line = next_line.result()
        if line is None:
            break
        handled = asyncio.ensure_future(session.handle(line))
        if not await until(handled):
            return await stop_now()
        if not handled.result():
            quit_asked = True
            break

    async def nothing_pending() -> bool:
        return not await unfinished()

    if quit_asked or interactive:
        # Leaving on purpose: say what is left rather than wait for it.
        left = await unfinished()
        if left:
            tell(f"{_jobs(left)} unfinished; they resume on the next start.")
            return 1
    elif not await nothing_pending():
        tell(f"Waiting for {_jobs(await unfinished())} to finish (Ctrl-C stops; they resume on the next start)…")
        timeout = core.settings.job_timeout + core.settings.queue_timeout
        waited = asyncio.ensure_future(session.wait_until_settled(nothing_pending, timeout))
        if not await until(waited):
            return await stop_now()
        if not waited.result():
            tell("Gave up waiting for the remaining jobs; they resume on the next start.")
            return 1
    return 1 if session.refused or notifier.failed_jobs else 0
