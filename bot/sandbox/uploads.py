"""Files uploaded with POST files: kept in memory and served back at their url."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from bot.sandbox.errors import ApiError

UPLOAD_MEDIA_PREFIX = "/media/upload/"
_PATH_PREFIX = "upload/"
# POST files takes files up to 5 GB (seeds/v2/post-pixverse-files.md).
MAX_UPLOAD_BYTES = 5 * 1000**3

# The Content-Type table of seeds/v2/post-pixverse-files.md (compared in lower case).
_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/3gpp": "3gp",
    "video/x-matroska": "mkv",
    "video/x-flv": "flv",
    "video/mpeg": "mpeg",
    "video/mp2t": "ts",
    "video/x-msvideo": "avi",
    "video/x-motion-jpeg": "mjpeg",
    "video/webm": "webm",
    "video/ogg": "ogv",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
}


@dataclass(frozen=True)
class Upload:
    """One uploaded file."""

    id: int
    name: str  # "<uuid>.<ext>"
    content_type: str
    data: bytes
    origin: str  # scheme://host:port the client used, for the absolute url

    @property
    def path(self) -> str:
        """The reference to pass as `first_frame_path` or `video_path`."""
        return _PATH_PREFIX + self.name

    @property
    def url(self) -> str:
        return f"{self.origin}{UPLOAD_MEDIA_PREFIX}{self.name}"

    @property
    def kind(self) -> str:
        """ "image", "video" or "audio"."""
        return self.content_type.split("/", 1)[0]

    def to_json(self) -> dict[str, Any]:
        """The answer of POST files: `result[0]` for images, `path`/`url` otherwise."""
        if self.kind != "image":
            return {"path": self.path, "url": self.url}
        image = {"id": self.id, "url": self.url, "path": self.path, "size": len(self.data), "name": self.name}
        return {"result": [image | {"category": 0, "err_msg": ""}]}


class UploadStore:
    """Every file uploaded to the sandbox, by name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Upload] = {}
        self._ids = itertools.count(1)

    def add(self, content_type: str, data: bytes, origin: str) -> Upload:
        """Keep a file; 400 unless its Content-Type is one the docs list."""
        extension = _EXTENSIONS.get(content_type.lower())
        if extension is None:
            allowed = ", ".join(sorted(_EXTENSIONS))
            raise ApiError(400, f"Content-Type: {content_type or 'missing'} is not supported; use one of {allowed}")
        if not data:
            raise ApiError(400, "file: the request body is empty")
        if len(data) > MAX_UPLOAD_BYTES:
            raise ApiError(400, f"file: {len(data)} bytes is over the 5 GB limit")
        upload = Upload(next(self._ids), f"{uuid.uuid4()}.{extension}", content_type, data, origin)
        self._by_name[upload.name] = upload
        return upload

    def get(self, name: str) -> Upload | None:
        return self._by_name.get(name)

    def require(self, path: str, kind: str, field: str) -> Upload:
        """The upload a request refers to by path; 400 naming `field` when there is none."""
        upload = self._by_name.get(path.removeprefix(_PATH_PREFIX)) if path.startswith(_PATH_PREFIX) else None
        if upload is None or upload.kind != kind:
            raise ApiError(400, f"{field}: {path} is not an uploaded {kind} (upload it with POST files first)")
        return upload
