"""Property-based fuzzing of everything users and the network can send: parsing, options,
images, callback bodies. Every case is answered with a clear error or handled — never a
crash — and a refused request charges nothing."""

from __future__ import annotations

import io
import shlex
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.console.app import ConsoleNotifier, ConsoleSession, Terminal
from bot.blobs import check_image
from bot.commands import Animate, CreateSingle, RequestBuilder, parse_command
from bot.errors import BotError, InvalidInput
from bot.settings import load_settings
from bot.submission import build_upstream_request
from bot.text_options import ANIMATE_OPTIONS, COMMON_OPTIONS, CREATE_OPTIONS, parse_options, split_words
from bot.upstream.models import Video
from bot.webhooks import CallbackHandler, CallbackSigner
from tests.harness import RecordingNotifier, fast_settings, running_core

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
OPTION_WORDS = [f"--{name}" for opt in CREATE_OPTIONS + ANIMATE_OPTIONS + COMMON_OPTIONS for name in opt.names]
VALUES = st.one_of(
    st.sampled_from(
        ["9:16", "16:9", "anime", "Anime", "3d animation", "yes", "no", "v5", "v9", "1080p", "0", "-1", "11"]
    ),
    st.integers(-(2**40), 2**40).map(str),
    st.text(max_size=20),
)
COMMAND_TEXT = st.lists(st.one_of(st.sampled_from(OPTION_WORDS), VALUES, st.text(max_size=30)), max_size=12).map(
    " ".join
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)


@FUZZ
@given(COMMAND_TEXT)
def test_command_text_parses_or_is_refused_with_a_named_option(text):
    builder = RequestBuilder(load_settings(_env_file=None))
    try:
        parsed = parse_options(text, CREATE_OPTIONS + COMMON_OPTIONS)
        with parsed.in_users_words():
            request = builder.create_single(parse_command(CreateSingle, prompt=parsed.prompt, **parsed.values))
            build_upstream_request(request)
    except InvalidInput as exc:
        assert exc.field and exc.problem
    else:
        assert len(request.user_prompt) <= 512 and 1 <= request.seed <= 2_147_483_647


@FUZZ
@given(st.one_of(COMMAND_TEXT, st.text(alphabet=st.characters(), max_size=60)))
def test_words_split_exactly_as_shlex_splits_them(text):
    try:
        expected = shlex.split(text, posix=True)
    except ValueError:  # an unclosed quote or a trailing backslash
        with pytest.raises(ValueError):
            split_words(text)
    else:
        assert split_words(text) == expected


@FUZZ
@given(st.dictionaries(st.sampled_from(list(Animate.model_fields) + ["bogus"]), JSONISH, max_size=6))
def test_option_values_of_any_type_are_validated(fields):
    builder = RequestBuilder(load_settings(_env_file=None))
    try:
        request = builder.animate(parse_command(Animate, **fields), "blob")
        build_upstream_request(request.with_changes(image_path="upload/x.png"))
    except InvalidInput as exc:
        assert str(exc).startswith(f"{exc.field}: ")


@FUZZ
@given(
    st.binary(max_size=64),
    st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP", b"GIF89a"]),
)
def test_image_bytes_are_checked_by_content(tail, head):
    try:
        mime = check_image(head + tail, max_bytes=64)
    except InvalidInput as exc:
        assert exc.field == "image" and ("JPEG, PNG, WebP or GIF" in exc.problem or "limit" in exc.problem)
    else:
        assert mime in {"image/png", "image/jpeg", "image/webp", "image/gif"}


@FUZZ
@given(JSONISH)
def test_any_callback_body_parses_or_is_refused(body):
    if isinstance(body, dict):
        try:
            Video.from_callback(body)
        except ValueError:
            pass


@pytest.fixture
async def core(tmp_path, sandbox):
    settings_ = fast_settings(tmp_path, sandbox, quota_per_user="1000")
    async with running_core(settings_, RecordingNotifier(), start=False) as core:
        yield core


@FUZZ
@given(
    job_id=st.text(string.ascii_letters + string.digits, min_size=1, max_size=12),
    token=st.text(max_size=40),
    body=JSONISH,
)
async def test_forged_callbacks_are_refused_without_error(core, job_id, token, body):
    handler = CallbackHandler(
        signer=CallbackSigner(b"k" * 32, "http://127.0.0.1:1"), jobs=core.jobs, tracker=core.tracker
    )
    status, _ = await handler.handle(job_id, token, body)
    assert status == 403  # without the job's HMAC nothing is even looked up


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                ["/create_single", "/animate", "/reroll", "/remix", "/status", "/upscale", "/cancel", "/queue"]
            ),
            COMMAND_TEXT,
        ),
        min_size=1,
        max_size=4,
    ).map(" ".join)
)
async def test_console_lines_never_crash_and_refusals_charge_nothing(core, line):
    terminal = Terminal(io.StringIO(), interactive=False)
    session = ConsoleSession(
        core.service,
        core.control,
        core.admin,
        core.gate,
        ConsoleNotifier(terminal, core.settings.console_output_dir),
        terminal,
        "fuzzer",
    )
    before, _ = await core.quotas.status(session._requester.user)
    try:
        await session.handle(line)
    except BotError:  # pragma: no cover - handle() answers BotErrors itself
        raise AssertionError("a BotError escaped the console") from None
    after, _ = await core.quotas.status(session._requester.user)
    charged = after.reserved - before.reserved
    assert charged == len(session.started)  # one unit per accepted job, none for refusals
