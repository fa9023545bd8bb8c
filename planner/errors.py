"""The base of every error a user can act on. The CLI prints these as one line; anything else
is a bug and keeps its traceback."""


class PlannerError(Exception):
    """A file, config, dataset, checkpoint or run that cannot be used, with what to do about it."""


class ConfigError(PlannerError, ValueError):
    """A config file, key or value that cannot be used, with a message a user can act on."""
