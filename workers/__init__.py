"""Background work: the Dramatiq broker set-up, the actors and the periodic scheduler.

Nothing here does work at import time. The composition root (``pulpit.cli``) builds a broker
from the settings with :func:`workers.broker.make_broker`, declares the actors on it with
:func:`workers.actors.register_actors`, installs the after-commit dispatcher with
:func:`workers.broker.install_dispatcher`, and then runs a worker and the scheduler.
"""
