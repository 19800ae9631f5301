"""Platform-neutral wording: what users read, in one place for every adapter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.catalogue import Catalogue, shipped_catalogue
from bot.delivery import describe_settings
from bot.domain import Job, JobState, utcnow
from bot.kinds import KINDS, GenerationKind
from bot.media import ALLOWED_VIDEO_TYPES
from bot.ports import Progress, ProgressStage
from bot.text_options import COMMON_OPTIONS, usage
from bot.voices import VoiceInfo

if TYPE_CHECKING:
    from bot.cancellation import QueueView

STATE_WORDS = {
    JobState.QUEUED: "queued",
    JobState.SUBMITTING: "starting",
    JobState.SUBMITTED: "started",
    JobState.GENERATING: "generating",
    JobState.COMPLETED: "finished, being delivered",
    JobState.FAILED: "failed",
    JobState.MODERATED: "refused by moderation",
    JobState.CANCELLED: "cancelled",
}


def state_word(job: Job) -> str:
    if job.state is JobState.DELIVERED:
        if job.outcome is None or job.outcome is JobState.COMPLETED:
            return "done"
        return STATE_WORDS.get(job.outcome, "done")
    return STATE_WORDS[job.state]


def progress_text(job: Job, progress: Progress) -> str:
    what = job.request.user_prompt or job.request.kind.value
    if len(what) > 80:
        what = what[:79] + "…"
    if progress.stage is ProgressStage.QUEUED:
        where = f" — #{progress.queue_position} in line" if progress.queue_position else ""
        return f"⏳ Queued{where}: {what}"
    if progress.stage is ProgressStage.WAITING:
        return f"⏸ Waiting: {progress.note or 'the video service is unavailable'}"
    if progress.stage is ProgressStage.STARTED:
        return f"🎬 Started: {what}"
    if progress.stage is ProgressStage.OFF_PEAK:
        return f"🌙 Waiting for off-peak hours (PixVerse makes it within about a day): {what}"
    elapsed = progress.elapsed_seconds or 0
    return f"🎬 Generating ({elapsed // 60}:{elapsed % 60:02d}): {what}"


def job_line(job: Job) -> str:
    age = int((utcnow() - job.created_at).total_seconds())
    when = f"{age // 60} min ago" if age >= 60 else "just now"
    prompt = job.request.user_prompt or job.request.kind.value
    if len(prompt) > 50:
        prompt = prompt[:49] + "…"
    return f"{job.id} · {state_word(job)} · {prompt} · {when}"


def duration_words(seconds: float) -> str:
    """A wait in words a chat reads at a glance: "under a minute", "~4 min", "~1 h 20 min"."""
    minutes = math.ceil(seconds / 60)
    if minutes <= 1:
        return "under a minute"
    if minutes < 60:
        return f"~{minutes} min"
    return f"~{minutes // 60} h {minutes % 60:02d} min"


def queue_text(view: QueueView, command_prefix: str = "/") -> str:
    """/queue: each unfinished job with its place and estimate, then how the estimate is made."""
    whose = "This group's" if view.group else "Your"
    if not view.entries:
        return f"{whose} queue is empty: no job is waiting or running. {view.queued_total} queued in all."
    lines = [f"{whose} jobs not finished yet:"]
    for entry in view.entries:
        job = entry.job
        what = job.request.user_prompt or job.request.kind.value
        what = what if len(what) <= 40 else what[:39] + "…"
        owner = f" · {job.user.display_name or job.user.key}" if view.group else ""
        if entry.place is not None:
            where = f"#{entry.place} in line ({entry.ahead} ahead)"
        else:
            where = state_word(job)
        if job.request.off_peak:
            when = "off-peak: within about a day"
        elif entry.ready_in is None:
            when = "no estimate yet"
        elif entry.ready_in <= 0:
            when = "ready any moment"
        else:
            when = f"ready in {duration_words(entry.ready_in)}"
        lines.append(f"{job.id} · {where} · {when} · {what}{owner}")
    if view.more:
        lines.append("… and more (the oldest are listed).")
    estimate = view.estimate
    if estimate.typical_run is None:
        basis = "no video finished recently, so there is no time estimate yet"
    else:
        basis = (
            f"a video takes {duration_words(estimate.typical_run).removeprefix('~')}"
            f" (median of the last {estimate.runs_measured})"
        )
    lines.append(
        f"{view.queued_total} queued in all; {estimate.free} of {estimate.slots} PixVerse slots free; {basis}."
        f" {command_prefix}cancel <job> stops one."
    )
    return "\n".join(lines)


def job_details(job: Job, *, video: str | None = None) -> str:
    """One job for /status; `video` names where the video is (the console's local file)."""
    lines = [f"Job {job.id}: {state_word(job)}", f"Prompt: {job.request.user_prompt or '—'}", describe_settings(job)]
    if job.parent_id:
        lines.append(f"{job.action.value if job.action else 'made'} from job {job.parent_id}")
    if job.failure:
        lines.append(f"Reason: {job.failure}")
    if job.has_video and (video or job.result_url):
        lines.append(f"Video: {video or job.result_url}")
    return "\n".join(lines)


def help_text(command_prefix: str = "/", catalogue: Catalogue | None = None) -> str:
    """Every generation kind with its options (from its declaration), then the rest."""
    p = command_prefix
    catalogue = catalogue or shipped_catalogue()
    kinds = "\n\n".join(_kind_help(kind, p, catalogue) for kind in KINDS)
    models = ", ".join(f"{name} ({catalogue.get(name).description})" for name in catalogue.names)
    return f"""Make short videos with PixVerse.

{kinds}

Options for all:
{usage(COMMON_OPTIONS, catalogue)}
Models: {models}

Under each finished video: 🔄 Reroll (new seed), 🔀 Remix (new prompt), ⬆️ Upscale, ➕ Extend,
✏️ Modify (say what to change), 🗣 Lip-sync (v5 videos: words to speak, or a voice note / audio file up to 60 s).
{p}lipsync <words> [--voice NAME] — in reply to one of my videos (the same as 🗣), or with your own video (MP4 or MOV)
{p}voices — the voices for --voice, with a sample of each
{p}effects [words] — the ready-made effects for {p}effect, with what each takes and costs
{p}jobs — your recent jobs · {p}status <job> — one job's state · {p}help — this text
{p}queue — your waiting and running jobs, their place in line and when they may be ready
{p}cancel <job> — stop a job (or ✖️ Cancel under its progress message); a queued one is refunded at once
{p}id — your id and this chat's (what the operator puts in BOT_ADMIN_IDS)"""


def _kind_help(kind: GenerationKind, p: str, catalogue: Catalogue) -> str:
    lines = [f"{p}{kind.name} {kind.usage} — {kind.summary}", f"  e.g. {p}{kind.example}"]
    if kind.pictures is not None:
        together = " as an album" if len(kind.pictures.roles) > 1 else ""
        lines.append(f"  with {kind.pictures.describe()}{together} (console: their file paths first)")
    if kind.options:
        lines.append(usage(kind.options, catalogue))
    if kind.takes_video:
        lines.append(f"  with your video, {ALLOWED_VIDEO_TYPES} (console: its file path first)")
        # An edit takes only some of the options for all.
        lines.append("  options: " + ", ".join(f"--{o.names[0]}" for o in kind.common_options))
    return "\n".join(lines)


def voices_text(voices: Sequence[VoiceInfo], command_prefix: str = "/") -> str:
    """The voice list as every chat shows it: names, samples and how to use one."""
    p = command_prefix
    lines = "\n".join(f"• {voice.name}" + (f" — {voice.sample_url}" if voice.sample_url else "") for voice in voices)
    return (
        f"Voices ({len(voices)}):\n{lines}\n\n"
        f'Use one: {p}create_single … --model v5 --say "Hello there" --voice {voices[0].name if voices else "NAME"},'
        f" or 🗣 Lip-sync / {p}lipsync <words> --voice NAME on a v5 video."
    )
