"""Platform-neutral wording: what users read, in one place for every adapter."""

from __future__ import annotations

from bot.catalogue import Catalogue, shipped_catalogue
from bot.delivery import describe_settings
from bot.domain import Job, JobState, utcnow
from bot.kinds import KINDS, GenerationKind
from bot.media import ALLOWED_VIDEO_TYPES
from bot.ports import Progress, ProgressStage
from bot.text_options import COMMON_OPTIONS, usage

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
✏️ Modify (say what to change).
{p}effects [words] — the ready-made effects for {p}effect, with what each takes and costs
{p}jobs — your recent jobs · {p}status <job> — one job's state · {p}help — this text
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
