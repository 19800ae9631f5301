"""Fakes of the outside world (chat platforms) for tests; nothing here reaches the internet."""
