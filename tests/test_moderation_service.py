"""Moderation as groups use it: lists, strike mode, mutes, PixVerse refusals, external checks, the gate."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from aiohttp import web

from bot.bootstrap import serving_http
from bot.commands import Animate, CreateSingle, parse_command
from bot.domain import ChatRef, JobState, Platform, Requester, ResultAction, UserRef, utcnow
from bot.errors import NotAllowed, Refused
from bot.moderation.service import PromptRejected
from bot.sandbox import SandboxConfig, running_sandbox
from tests.harness import RecordingNotifier, eventually, fast_settings, requester, running_core, tiny_png

OPERATOR = "console:boss"


def member(user_id: str = "m1", group: str = "g1", *, admin: bool = False) -> Requester:
    return Requester(
        user=UserRef(Platform.CONSOLE, user_id, f"Member {user_id}"),
        chat=ChatRef(Platform.CONSOLE, group),
        is_group_admin=admin,
    )


def command(prompt: str = "a fox", **options):
    return parse_command(CreateSingle, prompt=prompt, **options)


@pytest.fixture
async def sandbox():
    async with running_sandbox(SandboxConfig(generation_seconds=0.2)) as sb:
        yield sb


@pytest.fixture
async def core(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, bot_admin_ids=[OPERATOR])
    async with running_core(settings, RecordingNotifier()) as core:
        yield core


async def test_every_text_that_reaches_pixverse_is_checked_against_the_global_list(core):
    with pytest.raises(PromptRejected, match="blocked term"):
        await core.service.create_single(member(), command("a nude portrait"))
    with pytest.raises(PromptRejected):
        await core.service.create_single(member(), command("a fox", negative_prompt="gory everywhere"))
    with pytest.raises(PromptRejected):
        await core.service.animate(member(), parse_command(Animate, prompt="make her n.u.d.e"), tiny_png())
    job = await core.service.create_single(member(), command("a classic car at sunset"))
    await eventually(lambda: _delivered(core, job.id))
    with pytest.raises(PromptRejected):
        await core.service.press(member(), job.id, ResultAction.REMIX, prompt="now make it nude")
    assert await core.jobs.in_states([JobState.QUEUED, JobState.SUBMITTING]) == []


async def test_a_groups_own_list_applies_only_in_that_group(core):
    text = await core.admin.filter(member("a", admin=True), "add", "pineapple")
    assert "Added" in text
    with pytest.raises(PromptRejected, match="“pineapple”"):
        await core.service.create_single(member("x"), command("pineapple pizza"))
    await core.service.create_single(member("x", group="g2"), command("pineapple pizza"))
    assert "Would be refused" in await core.admin.filter(member("a", admin=True), "test", "PINEAPPLE!")
    assert "pineapple" in await core.admin.filter(member("a", admin=True), "list", "")
    await core.admin.filter(member("a", admin=True), "remove", "pineapple")
    await core.service.create_single(member("x"), command("pineapple pizza"))


async def test_group_admins_cannot_add_regular_expressions_but_operators_can(core):
    with pytest.raises(Exception, match="re:"):
        await core.admin.filter(member("a", admin=True), "add", "re:pine.*")
    operator_private = Requester(
        user=UserRef(Platform.CONSOLE, "boss"), chat=ChatRef(Platform.CONSOLE, "dm", is_private=True)
    )
    await core.admin.filter(operator_private, "add", "re:pine+apple")
    with pytest.raises(PromptRejected):
        await core.service.create_single(member("x", group="g9"), command("pineeeapple"))


async def test_strike_mode_mutes_after_the_limit_and_the_mute_expires(core):
    admin = member("a", admin=True)
    assert "Mode: strike" in await core.admin.filter_mode(admin, ["strike", "2", "24", "30"])
    with pytest.raises(PromptRejected, match="Strike 1 of 2"):
        await core.service.create_single(member("x"), command("gory"))
    with pytest.raises(PromptRejected, match="muted from the bot here for 30 min"):
        await core.service.create_single(member("x"), command("gory again"))
    with pytest.raises(Refused, match="muted"):
        await core.gate.admit(member("x"))
    await core.gate.admit(member("x", group="elsewhere"))  # the mute is per group
    core.moderation._clock = lambda: utcnow() + timedelta(minutes=31)
    await core.gate.admit(member("x"))
    log = await core.admin.modlog(admin)
    assert log.count("Member x") == 2 and "muted" in log and "strike" in log


async def test_pixverse_refusals_count_as_strikes(core):
    await core.admin.filter_mode(member("a", admin=True), ["strike", "1"])
    job = await core.service.create_single(member("x"), command("something spicy"))  # PixVerse says MODERATED
    await eventually(lambda: _delivered(core, job.id))
    with pytest.raises(Refused, match="muted"):
        await core.gate.admit(member("x"))
    assert "pixverse" in await core.admin.modlog(member("a", admin=True))


async def test_admins_are_exempt_unless_the_group_says_otherwise(core):
    admin = member("a", admin=True)
    await core.service.create_single(admin, command("gory"))
    await core.admin.filter_mode(admin, ["exempt", "off"])
    with pytest.raises(PromptRejected):
        await core.service.create_single(admin, command("gory"))


async def test_bans_and_bot_off_in_a_group(core):
    admin = member("a", admin=True)
    await core.admin.ban(admin, member("x").user)
    with pytest.raises(Refused, match="not allowed"):
        await core.gate.admit(member("x"))
    await core.gate.admit(member("x", group="g2"))
    await core.admin.unban(admin, member("x").user)
    await core.gate.admit(member("x"))

    await core.admin.set_bot_enabled(admin, False)
    with pytest.raises(Refused) as refused:
        await core.gate.admit(member("x"))
    assert refused.value.silent
    await core.gate.admit(admin, toggles_bot=True)
    await core.admin.set_bot_enabled(admin, True)
    await core.gate.admit(member("x"))


@pytest.mark.parametrize(
    "call",
    [
        lambda a, r, t: a.set_quota(r, t, "5"),
        lambda a, r, t: a.set_quota(r, None, "5"),
        lambda a, r, t: a.reset_quota(r, t),
        lambda a, r, t: a.ban(r, t),
        lambda a, r, t: a.unban(r, t),
        lambda a, r, t: a.filter(r, "add", "x"),
        lambda a, r, t: a.filter(r, "list", ""),
        lambda a, r, t: a.filter_mode(r, ["strike"]),
        lambda a, r, t: a.set_bot_enabled(r, False),
        lambda a, r, t: a.modlog(r),
        lambda a, r, t: a.stats(r),
        lambda a, r, t: a.credits(r),
    ],
)
async def test_admin_commands_refuse_members_without_revealing_anything(core, call):
    with pytest.raises(NotAllowed, match="^Sorry, only admins can use this command.$"):
        await call(core.admin, member("nobody"), member("victim").user)


async def test_operator_commands_stats_and_credits(core):
    job = await core.service.create_single(member("x"), command())
    await eventually(lambda: _delivered(core, job.id))
    operator = Requester(user=UserRef(Platform.CONSOLE, "boss"), chat=ChatRef(Platform.CONSOLE, "dm", is_private=True))
    stats = await core.admin.stats(operator, 7)
    assert "1 jobs" in stats and "Member x" in stats
    credits = await core.admin.credits(operator)
    assert "alice@sandbox.local" in credits and "credits" in credits
    with pytest.raises(NotAllowed):
        await core.admin.credits(member("a", admin=True))  # group admins don't see the operator's account


async def test_the_rate_limit_answers_once_then_stays_quiet(tmp_path, sandbox):
    settings = fast_settings(tmp_path, sandbox, rate_limit_commands=3, rate_limit_seconds=60)
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        for _ in range(3):
            await core.gate.admit(requester("fast"))
        with pytest.raises(Refused, match="Slow down: at most 3 commands per 60 s") as first:
            await core.gate.admit(requester("fast"))
        with pytest.raises(Refused) as second:
            await core.gate.admit(requester("fast"))
        await core.gate.admit(requester("slow"))
    assert not first.value.silent and second.value.silent


@pytest.fixture
async def moderation_endpoint():
    """An OpenAI-moderation-compatible endpoint on loopback; flags prompts mentioning dragons."""
    seen: list[dict] = []
    state = {"down": False}

    async def moderate(request: web.Request) -> web.Response:
        if state["down"]:
            return web.json_response({"error": "overloaded"}, status=503)
        body = await request.json()
        seen.append({"body": body, "auth": request.headers.get("Authorization")})
        flagged = "dragon" in body["input"].lower()
        result = {"flagged": flagged, "categories": {"violence": flagged, "sexual": False}}
        return web.json_response({"id": "modr-1", "results": [result]})

    app = web.Application()
    app.router.add_post("/v1/moderations", moderate)
    async with serving_http(app, "127.0.0.1", 0) as base_url:
        yield f"{base_url}/v1/moderations", seen, state


@pytest.mark.parametrize("fail_open", [True, False])
async def test_external_moderation_after_the_lists(tmp_path, sandbox, moderation_endpoint, fail_open, caplog):
    url, seen, state = moderation_endpoint
    settings = fast_settings(
        tmp_path, sandbox, moderation_url=url, moderation_api_key="sk-test-SECRET-123", moderation_fail_open=fail_open
    )
    caplog.set_level(logging.DEBUG)
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        with pytest.raises(PromptRejected, match=r"content checker \(violence\)"):
            await core.service.create_single(member(), command("a dragon attack"))
        await core.service.create_single(member(), command("a calm lake"))
        assert seen[0]["auth"] == "Bearer sk-test-SECRET-123"
        state["down"] = True
        if fail_open:
            await core.service.create_single(member(), command("a calm lake"))
        else:
            with pytest.raises(Refused, match="checker is unavailable"):
                await core.service.create_single(member(), command("a calm lake"))
    assert "external moderation failed" in caplog.text
    assert "sk-test-SECRET-123" not in caplog.text


async def _delivered(core, job_id):
    job = await core.jobs.get(job_id)
    return job if job.state is JobState.DELIVERED else None


async def test_the_operator_can_replace_the_global_list(tmp_path, sandbox):
    own_list = tmp_path / "blocklist.txt"
    own_list.write_text("# our house rules\npineapple\nre:brocc?oli\n", "utf-8")
    settings = fast_settings(tmp_path, sandbox, blocklist_file=own_list)
    async with running_core(settings, RecordingNotifier(), start=False) as core:
        with pytest.raises(PromptRejected, match="“pineapple”"):
            await core.service.create_single(member(), command("pineapple pizza"))
        with pytest.raises(PromptRejected, match="“re:brocc"):
            await core.service.create_single(member(), command("steamed brocoli"))
        await core.service.create_single(member(), command("a nude beach"))  # the shipped list is replaced
