"""The worker process's entry module: the Faust app with every agent and page registered.

``hookstream worker`` runs ``faust -A app.worker:app worker`` (the same command works by hand).
Importing this module imports the app (:mod:`app.main`), then each module that registers an
agent or a page on it, and sets the app's worker class; nothing imports this module but
Faust's command line, so the app never imports its own agents.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from app.agents import deliver, ingest, webhooks
from app.agents.deliver import scheduler
from app.api import health, logs, openapi, portal, portal_links, track
from app.api import webhooks as webhooks_api
from app.main import app, settings

#: The modules imported for their registration side effects, named so the intent is explicit.
REGISTERED = (
    deliver,
    ingest,
    webhooks,
    health,
    logs,
    openapi,
    portal,
    portal_links,
    track,
    webhooks_api,
)

__all__ = ["REGISTERED", "Worker", "app"]


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner, and with a graceful stop.

    At log level WARN and above Faust sets the root logger to DEBUG so the spinner turns on
    every record; under load that alone cost ~10 % of the worker's CPU (py-spy).
    """

    def on_setup_root_logger(self, logger: Any, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)

    async def on_stop(self) -> None:
        """Graceful stop (SIGTERM): finish what is in flight, commit it, and nothing more.

        1. Stop handing records to the agents (as Faust does when it stops its consumer).
        2. Let the requests in flight finish, up to the request timeout + 5 s, and park every
           job still queued (:meth:`Scheduler.stop`): each record whose jobs all settled is
           acknowledged, so nothing finished is sent again.
        3. Commit what the commit ledger allows (the batch writer's records go first), then
           close the ledger: records not settled (a retry waiting out its delay, the parking
           lane's, a request still running after the wait) stay uncommitted and are read
           again after the restart.
        """
        consumer: Any = app.consumer  # hookstream's transport Consumer (force_commit, ledger)
        assignment = consumer.assignment()
        consumer.stop_flow()
        app.flow_control.suspend()
        consumer.pause_partitions(assignment)
        app.flow_control.clear()
        timeout = settings.request_timeout + 5
        self.log.info("draining in-flight deliveries (up to %.0f s)", timeout)
        if not await scheduler.stop(timeout):
            self.log.warning("stopping with deliveries still in flight; they will be redelivered")
        # force_commit: commit() returns without committing while a periodic commit runs.
        await consumer.maybe_wait_for_commit_to_finish()
        committed = await consumer.force_commit()
        consumer.ledger.close()
        self.log.info("drained; final commit %s", "done" if committed else "had nothing new")
        await super().on_stop()


# aiokafka logs a table at INFO for every assign(): each log scan (a portal's delivery log,
# the dead-letter list) made one, hundreds of lines an hour of an open portal.
logging.getLogger("aiokafka.consumer.subscription_state").setLevel(logging.WARNING)

# Faust's settings object types its class settings as "a class or its dotted path".
app.conf.Worker = Worker  # type: ignore[assignment]
