NAME = "discord_overhead"


async def run(quick: bool):
    raise NotImplementedError
