"""How a run ends when something goes wrong: one exception type the entry point turns into a line and a status.

Bad settings are trainer.config.ConfigError (exit status 2); everything that stops a run that was already
going is a `Stop`, raised after what could be saved was saved.
"""


class Stop(Exception):
    """The run stopped early; `str(self)` is the one line to show, `exit_status` the process's status.

    `error` tells whether the line reports a failure (shown as `error: ...`) or a requested stop.
    """

    def __init__(self, message, exit_status=1, error=True):
        super().__init__(message)
        self.exit_status = exit_status
        self.error = error


class Interrupted(Stop):
    """SIGTERM (exit status 0: a preemption the scheduler asked for) or Ctrl-C (130, as a shell reports it)."""

    def __init__(self, message, exit_status):
        super().__init__(message, exit_status=exit_status, error=False)
