"""Images users send: checked by content (not by file name) and kept until uploaded.

An image is stored with its job (`JobAdmission.admit`) and deleted as soon as the job
no longer needs it: once uploaded upstream, or when the job ends without getting that far.
"""

from __future__ import annotations

import secrets

from bot.errors import BotError, InvalidInput
from bot.ports import BlobStore, ImageStoreFull

# Magic numbers of the image types POST files takes (seeds/v2/post-pixverse-files.md:
# png, jpeg, gif, webp); the MIME type is what the upload is sent as.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"WEBP", 8, "image/webp"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
)
ALLOWED_IMAGE_TYPES = "JPEG, PNG, WebP or GIF"


class ImageStorageFull(BotError):
    """Too many /animate images are waiting to be uploaded; this one cannot be kept right now."""

    def __init__(self, full: ImageStoreFull) -> None:
        self.full = full
        super().__init__(
            f"The bot is already holding as many pictures as it may ({full.stored_bytes / 1e6:.1f} of"
            f" {full.limit / 1e6:.1f} MB) for /animate requests waiting to start. This is temporary:"
            " room frees up as they start. Please send your picture again in a few minutes;"
            " nothing was charged."
        )


def new_blob_id() -> str:
    """A new, unguessable id to store an image under."""
    return secrets.token_urlsafe(16)


def sniff_image_type(data: bytes) -> str | None:
    """The image's MIME type from its first bytes, or None if it is not one we accept."""
    for magic, offset, mime in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic and (mime != "image/webp" or data[:4] == b"RIFF"):
            return mime
    return None


def human_size(size: int) -> str:
    """A byte count in the unit that reads best: 900 bytes, 12.5 KB, 3.2 MB."""
    if size < 1000:
        return f"{size} bytes"
    value = size / 1000
    for unit in ("KB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def check_image(data: bytes, *, max_bytes: int) -> str:
    """Validate an image for /animate; returns its MIME type."""
    if not data:
        raise InvalidInput("image", f"is empty; send a {ALLOWED_IMAGE_TYPES} picture")
    if len(data) > max_bytes:
        raise InvalidInput(
            "image", f"is {human_size(len(data))}; the limit is {human_size(max_bytes)} ({ALLOWED_IMAGE_TYPES})"
        )
    mime = sniff_image_type(data)
    if mime is None:
        raise InvalidInput("image", f"is not a picture this bot can animate; send {ALLOWED_IMAGE_TYPES}")
    return mime


async def load_image(blobs: BlobStore, blob_id: str | None) -> tuple[bytes, str]:
    stored = await blobs.get(blob_id) if blob_id else None
    if stored is None:
        raise InvalidInput("image", "is no longer stored; please send it again")
    return stored
