"""The root of PMS's own errors: the `pms` command turns these into one sentence and exit code 2."""


class PmsError(Exception):
    """A failure the operator can act on (bad setting, unreachable store); its message says what to do."""
