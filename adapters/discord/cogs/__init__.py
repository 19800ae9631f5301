"""The bot's slash commands, one cog per audience."""
