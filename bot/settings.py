"""Configuration from the environment and `.env`, validated once at start.

Every setting is documented in README.md ("Configuration"). Nothing here is read at
import time: `load_settings()` is called by the composition root.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.catalogue import Catalogue, CatalogueError
from bot.errors import InvalidInput
from bot.ranges import MUTE_MINUTES, STRIKE_LIMIT, STRIKE_WINDOW_HOURS
from bot.upstream.models import AspectRatio, Quality

V1_STYLES = ("Realistic", "Anime", "3D Animation")
SANDBOX_POLL_INTERVAL = 1.0


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- upstream
    useapi_api_token: SecretStr | None = None
    useapi_base_url: str = "https://api.useapi.net"
    useapi_timeout_seconds: float = Field(default=30.0, gt=0)
    # Accounts to use (emails). Empty: every account GET scheduler/available reports.
    useapi_accounts: CsvList = Field(default_factory=list)
    # Run the built-in sandbox in-process instead of a real upstream (no token needed).
    # `run` needs it said explicitly: it never serves synthetic videos to chats by accident.
    bot_sandbox: bool = False
    # How long each synthetic video takes in the built-in sandbox.
    sandbox_generation_seconds: float = Field(default=5.0, ge=0)

    # --- storage and HTTP
    # A SQLite file, or a postgresql:// URL (storage.open_storage).
    bot_database: str = "data/bot.sqlite3"
    bot_public_url: str | None = None
    bot_http_host: str = "0.0.0.0"
    bot_http_port: int = Field(default=8080, ge=0, le=65535)
    # Key for the per-job webhook tokens; generated and stored in the database if unset.
    bot_webhook_secret: SecretStr | None = None

    # --- chat platforms
    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str | None = None
    discord_bot_token: SecretStr | None = None
    # Discord's REST API base (a proxy); empty: discord.py's own (https://discord.com/api/v10).
    discord_api_base: str | None = None
    discord_guild_ids: CsvList = Field(default_factory=list)
    # Discord shards: how many the bot has in all (None: as many as Discord recommends) and
    # which of them this process runs (empty: all), so shards can be split across processes.
    discord_shard_count: int | None = Field(default=None, ge=1)
    discord_shard_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Operator ids per platform, e.g. "telegram:123,discord:456".
    bot_admin_ids: CsvList = Field(default_factory=list)

    # --- generation defaults (v1 style, v2 options)
    default_style: str = "Realistic"
    # The model catalogue (bot/data/models.json when unset); see README "Models".
    models_file: Path | None = None
    # A model the catalogue knows (checked at start).
    default_model: str = "v5.5"
    default_duration: int = Field(default=5, ge=1, le=10)
    default_quality: Quality = Quality.P540
    default_hd_quality: Quality = Quality.P720
    default_aspect_ratio: AspectRatio = AspectRatio.WIDE
    default_audio: bool = False
    default_off_peak: bool = False
    # Anime characters /create_single accepts (v1 `character`).
    anime_characters: CsvList = Field(
        default_factory=lambda: [
            "xiangling",
            "kamisatoayaka",
            "hutao",
            "raidenshogun",
            "yaemiko",
            "nahida",
            "ganyu",
            "keqing",
        ]
    )
    max_image_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    # All /animate images kept at once, waiting for their jobs to upload them. Past it a new
    # /animate is refused ("try again later") instead of letting the database grow unbounded.
    max_stored_image_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    # Videos users send for /modify and /extend. POST files takes up to 5 GB; the bot holds
    # a video in memory while it checks and uploads it, so it keeps a smaller cap. Telegram's
    # cloud Bot API hands bots files up to 20 MB (more with TELEGRAM_API_BASE, a local server).
    max_video_bytes: int = Field(default=100_000_000, gt=0, le=5 * 1000**3)
    # The upstream documents no length limit for a source video; this is the bot's.
    max_video_seconds: int = Field(default=30, ge=1, le=600)

    # --- scheduling and tracking (seconds)
    # How long the lip-sync voice list (GET videos/voices) is kept before it is fetched again.
    voices_cache_seconds: float = Field(default=3600.0, gt=0)
    max_jobs_in_flight_per_user: int = Field(default=2, ge=1)
    # Off-peak jobs hold no account slot and do not count above; they have their own cap
    # (unfinished off-peak jobs per user), checked when a request is accepted.
    max_off_peak_jobs_per_user: int = Field(default=3, ge=1)
    scheduler_interval: float = Field(default=2.0, gt=0)
    busy_retry_initial: float = Field(default=15.0, gt=0)
    busy_retry_max: float = Field(default=120.0, gt=0)
    capacity_refresh_interval: float = Field(default=30.0, gt=0)
    # A submission whose answer was lost is looked up upstream after this many seconds.
    unknown_outcome_grace: float = Field(default=30.0, ge=0)
    # Several processes on one PostgreSQL database: a process whose lease (renewed every
    # third of it) has run out counts as gone, and the others take its jobs over.
    instance_lease: float = Field(default=30.0, ge=1)
    poll_interval: float = Field(default=10.0, gt=0)
    off_peak_poll_interval: float = Field(default=600.0, gt=0)
    # Jobs the upstream will call back about are polled only as a safety net, for a lost
    # callback. Not sped up in the sandbox: it calls back like useapi.net does.
    webhook_safety_poll_interval: float = Field(default=300.0, gt=0)
    job_timeout: float = Field(default=30 * 60.0, gt=0)
    off_peak_job_timeout: float = Field(default=26 * 3600.0, gt=0)
    queue_timeout: float = Field(default=6 * 3600.0, gt=0)
    progress_interval: float = Field(default=5.0, ge=0)

    # --- delivering finished videos (see README "How it works")
    # Videos downloaded and posted at once: each may be up to 2000 MB on disk.
    max_concurrent_deliveries: int = Field(default=4, ge=1)
    # A failed delivery waits this long, doubling each time up to the maximum (seconds) …
    delivery_retry_initial: float = Field(default=30.0, gt=0)
    delivery_retry_max: float = Field(default=1800.0, gt=0)
    # … and after this many failed tries the user is told it could not be posted.
    delivery_max_attempts: int = Field(default=10, ge=1)

    # --- quotas (see README "Quotas")
    quota_unit: str = "videos"
    quota_window: str = "daily"
    quota_timezone: str = "UTC"
    # Per-user default; empty or "unlimited" for no limit. Operators are never limited.
    quota_per_user: str = "10"
    # Shared pool per group/server; empty for none (only per-user quotas apply).
    quota_per_group: str = ""
    # No longer read: prices come with each model in MODELS_FILE. Refused, so an old
    # price table is not silently ignored while quotas charge the catalogue's prices.
    pricing_file: Path | None = None
    # Anti-flood: at most this many commands per window per user.
    rate_limit_commands: int = Field(default=6, ge=1)
    rate_limit_seconds: float = Field(default=30.0, gt=0)

    # --- moderation (see README "Moderation")
    blocklist_file: Path | None = None
    filter_mode: str = "reject"
    # The same ranges as /filtermode accepts (bot/ranges.py).
    strike_limit: int = Field(default=3, ge=STRIKE_LIMIT.low, le=STRIKE_LIMIT.high)
    strike_window_hours: float = Field(default=24.0, ge=STRIKE_WINDOW_HOURS.low, le=STRIKE_WINDOW_HOURS.high)
    mute_minutes: float = Field(default=60.0, ge=MUTE_MINUTES.low, le=MUTE_MINUTES.high)
    admins_exempt: bool = True
    # Chat admins may press result buttons of other members' videos.
    admins_may_press_buttons: bool = True
    moderation_url: str | None = None
    moderation_api_key: SecretStr | None = None
    moderation_model: str | None = None
    moderation_fail_open: bool = True
    moderation_timeout_seconds: float = Field(default=5.0, gt=0)

    # --- data retention (see README "Data kept and for how long")
    # Days finished jobs, the moderation log, strikes and settled quota entries are kept; 0: for ever.
    retention_days: int = Field(default=90, ge=0, le=36500)
    # Seconds between background passes that delete what is past its retention.
    retention_prune_interval: float = Field(default=3600.0, gt=0)

    # --- console
    console_output_dir: Path = Path("data/videos")

    @field_validator("useapi_accounts", "discord_guild_ids", "bot_admin_ids", "anime_characters", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("bot_database", mode="before")
    @classmethod
    def _database(cls, value: object) -> object:
        # A path given in code (tests, benchmarks) is a file name like any other.
        return str(value) if isinstance(value, PurePath) else value

    @field_validator("discord_shard_count", mode="before")
    @classmethod
    def _shard_count(cls, value: object) -> object:
        # `DISCORD_SHARD_COUNT=` (left empty in an .env or a compose file) means "not set".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("discord_shard_ids", mode="before")
    @classmethod
    def _shard_id_numbers(cls, value: object) -> object:
        parts = _split_csv(value)
        if not isinstance(parts, list):
            return parts
        numbers = []
        for part in parts:
            if isinstance(part, str) and not part.isdigit():
                raise ValueError(f"{part!r} is not a shard number; list shard numbers like 0,1")
            numbers.append(int(part))
        return numbers

    @field_validator("discord_shard_ids")
    @classmethod
    def _shard_ids(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if not value or "discord_shard_count" not in info.data:  # none given, or the count is itself wrong
            return value
        count = info.data["discord_shard_count"]
        if count is None:
            raise ValueError(
                "needs DISCORD_SHARD_COUNT, the number of shards across all the bot's processes "
                "(the shards are numbered 0 to DISCORD_SHARD_COUNT - 1)"
            )
        for shard_id in value:
            if shard_id >= count:
                raise ValueError(
                    f"shard {shard_id} does not exist: with DISCORD_SHARD_COUNT={count} they are 0–{count - 1}"
                )
        repeated = sorted({shard_id for shard_id in value if value.count(shard_id) > 1})
        if repeated:
            raise ValueError(f"lists shard {repeated[0]} twice; list each shard once")
        return value

    @field_validator("max_stored_image_bytes")
    @classmethod
    def _image_store(cls, value: int, info: ValidationInfo) -> int:
        largest = info.data.get("max_image_bytes")
        if largest is not None and value < largest:
            raise ValueError(
                f"must be at least MAX_IMAGE_BYTES ({largest}), or no image of the largest allowed size could be kept"
            )
        return value

    @field_validator("quota_unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        return _choice(value, ("videos", "credits"))

    @field_validator("quota_window")
    @classmethod
    def _window(cls, value: str) -> str:
        return _choice(value, ("daily", "weekly", "monthly", "total"))

    @field_validator("filter_mode")
    @classmethod
    def _filter_mode(cls, value: str) -> str:
        return _choice(value, ("reject", "strike"))

    @field_validator("quota_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone; use a name like UTC or Europe/Berlin") from None
        return value

    @field_validator("quota_per_user", "quota_per_group")
    @classmethod
    def _quota(cls, value: str) -> str:
        text = str(value).strip().lower()
        if text in {"", "unlimited", "none"} or text.isdigit():
            return text
        raise ValueError(f"{value!r} should be a whole number, or empty/unlimited")

    @staticmethod
    def quota_limit(value: str) -> int | None:
        return int(value) if value.isdigit() else None

    @property
    def operator_keys(self) -> frozenset[str]:
        return frozenset(self.bot_admin_ids)

    @field_validator("models_file")
    @classmethod
    def _models_file(cls, value: Path | None) -> Path | None:
        try:
            Catalogue.load(value)
        except CatalogueError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("pricing_file")
    @classmethod
    def _pricing_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            raise ValueError(
                "is no longer read: prices now come with each model in the models file; "
                'move them into a copy of bot/data/models.json and set MODELS_FILE (README "Models")'
            )
        return value

    @field_validator("default_model")
    @classmethod
    def _default_model(cls, value: str, info: ValidationInfo) -> str:
        if "models_file" not in info.data:
            return value  # the models file itself was refused, and says why
        catalogue = Catalogue.load(info.data["models_file"])
        try:
            return catalogue.resolve(value)
        except InvalidInput as exc:
            raise ValueError(exc.problem) from None

    def catalogue(self) -> Catalogue:
        """The model catalogue these settings name (MODELS_FILE, or the shipped one)."""
        return Catalogue.load(self.models_file)

    @field_validator("default_style")
    @classmethod
    def _style(cls, value: str) -> str:
        for style in V1_STYLES:
            if value.strip().lower() == style.lower():
                return style
        raise ValueError(f"must be one of {', '.join(V1_STYLES)}")

    @field_validator("bot_admin_ids")
    @classmethod
    def _admin_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            platform, _, user_id = item.partition(":")
            if platform not in {"telegram", "discord", "console"} or not user_id:
                raise ValueError(f"{item!r} should look like telegram:123 or discord:456")
        return value

    @property
    def uses_sandbox(self) -> bool:
        """No token means the sandbox: the bot runs offline on embedded defaults."""
        return self.bot_sandbox or self.useapi_api_token is None

    @property
    def effective_poll_interval(self) -> float:
        """Sandbox videos take seconds, not minutes: poll them briskly unless told otherwise."""
        return self._sandbox_paced("poll_interval")

    @property
    def effective_off_peak_poll_interval(self) -> float:
        """The same for off-peak jobs: a sandbox off-peak video is made in seconds too."""
        return self._sandbox_paced("off_peak_poll_interval")

    def _sandbox_paced(self, name: str) -> float:
        configured: float = getattr(self, name)
        if self.uses_sandbox and name not in self.model_fields_set:
            return min(configured, SANDBOX_POLL_INTERVAL)
        return configured


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    text = value.strip().lower()
    if text not in allowed:
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return text


class SettingsError(Exception):
    """The configuration is invalid; `str()` tells the operator what to fix."""

    heading = "Invalid configuration (environment or .env):\n"


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError(SettingsError.heading + "\n".join(lines)) from None


def mask_secret(secret: SecretStr | None) -> str:
    """`abc…xyz` for long secrets, `…` for short ones, `(not set)` for none."""
    if secret is None:
        return "(not set)"
    raw = secret.get_secret_value()
    return f"{raw[:3]}…{raw[-3:]}" if len(raw) >= 12 else "…"
