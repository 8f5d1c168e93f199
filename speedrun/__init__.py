"""The `speedrun` command line; see `speedrun.cli`."""
