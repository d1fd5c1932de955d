"""The ``hookstream`` command: broker, topics, worker, produce, receiver, and run (make run).

Settings come from ``HOOKSTREAM_*`` environment variables (see :mod:`app.settings`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from app.settings import Settings, get_settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: What ``hookstream --help`` says (plain text: the module docstring is reST for developers).
DESCRIPTION = (
    "hookstream: webhook delivery on Kafka. Run a local broker and a worker (run), produce "
    "events, replay dead letters, list refused input, hand out portal links. Settings come "
    "from HOOKSTREAM_* environment variables (see the README's Settings)."
)
#: The account of the examples in ``examples/`` (the portal link ``make run`` prints).
DEMO_ACCOUNT = "acct_demo"


# -- broker ---------------------------------------------------------------------------------
def _kafka_data_dir(settings: Settings, given: str | None) -> Path:
    return Path(given) if given else Path(settings.data_dir) / "kafka"


def cmd_broker(args: argparse.Namespace) -> int:
    """Run a local broker in the foreground until SIGTERM or Ctrl-C."""
    from app.kafka.brokers import Engine

    engine = Engine(args.engine)
    if engine is Engine.TANSU:
        if args.data_dir:
            print("--data-dir is for --engine kafka: Tansu keeps everything in memory")
            return 2
        from app.kafka.brokers.tansu import broker_command

        command = broker_command(args.port)
        print(f"embedded broker (Tansu, memory storage) on 127.0.0.1:{args.port}", flush=True)
        os.execv(command[0], command)  # noqa: S606 - our own broker binary, fixed arguments
    from app.kafka.brokers import apache

    settings = get_settings()
    data_dir = _kafka_data_dir(settings, args.data_dir)
    home = Path(settings.kafka_home) if settings.kafka_home else None
    try:
        install = apache.prepare(home)
        properties = apache.configure(install, args.port, data_dir)
    except apache.BrokerUnavailable as exc:
        print(f"hookstream broker: {exc}", file=sys.stderr)
        return 2
    command = apache.broker_command(install, properties, settings.kafka_jvm_opts)
    broker = subprocess.Popen(command)  # noqa: S603 - Kafka from our jars, fixed arguments
    for signum in (signal.SIGTERM, signal.SIGINT):  # Kafka shuts down cleanly on SIGTERM
        signal.signal(signum, lambda *_: broker.send_signal(signal.SIGTERM))
    from app.kafka.brokers.net import port_accepts

    while broker.poll() is None and not port_accepts(args.port):
        time.sleep(0.1)
    if broker.poll() is None:
        print(
            f"Apache Kafka {apache.KAFKA_VERSION} (KRaft) on 127.0.0.1:{args.port}, "
            f"data in {data_dir}",
            flush=True,
        )
    return broker.wait()


# -- topics ---------------------------------------------------------------------------------
def cmd_topics(args: argparse.Namespace) -> int:
    from app.kafka.admin import create_topics, wait_for_broker

    settings = get_settings()

    async def _create() -> list[str]:
        await wait_for_broker(settings)
        return await create_topics(settings)

    created = asyncio.run(_create())
    print(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else ""))
    return 0


# -- worker ---------------------------------------------------------------------------------
def cmd_worker(args: argparse.Namespace) -> int:
    # uvloop, set before any loop exists (faust's own --loop is read from sys.argv at import).
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from faust.cli.faust import cli

    from app.kafka.admin import create_topics, wait_for_broker

    settings = get_settings()

    async def _prepare() -> None:
        await wait_for_broker(settings, timeout=60)
        await create_topics(settings)

    asyncio.run(_prepare())
    argv = ["-A", "app.worker:app", "-l", args.loglevel, "worker"]
    if args.web_port == 0:
        argv.append("--without-web")
    else:
        argv += ["--web-port", str(args.web_port), "--web-host", settings.web_host]
    cli.main(args=argv, prog_name="hookstream worker")
    return 0


# -- produce --------------------------------------------------------------------------------
def _lines(source: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of each non-blank line of ``source`` (a path, or - for stdin)."""
    stream: IO[bytes] = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    with stream:
        for number, line in enumerate(stream, 1):
            line = line.strip()
            if line:
                yield number, line


class NotJsonError(ValueError):
    """A line that is not one JSON object: not sent (the topics carry JSON objects)."""


def record_for(kind: str, line: bytes) -> tuple[bytes | None, bytes | None]:
    """(key, value) for one JSON line; ``{"delete": "<id>"}`` on webhooks is a tombstone.

    A JSON object is sent as it is, valid or not, so the pipeline's own validation (and
    ``events.invalid``) sees what a producer would send; a line that is no JSON object at all
    is refused here with :class:`NotJsonError` (a typo in a file, not an event).
    """
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise NotJsonError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise NotJsonError(f"not a JSON object but {type(document).__name__}")
    if kind == "webhooks":
        if set(document) == {"delete"} and isinstance(document["delete"], str):
            return document["delete"].encode(), None
        key = document.get("id")
    else:
        key = document.get("account_id")
    return (key.encode() if isinstance(key, str) else None), line


def cmd_produce(args: argparse.Namespace) -> int:
    from aiokafka import AIOKafkaProducer

    from app.kafka.security import client_options
    from app.kafka.topics import EVENTS_CONTACTS, EVENTS_MESSAGES, WEBHOOKS, TopicCatalog

    settings = get_settings()
    catalog = TopicCatalog.from_settings(settings)
    topic = catalog.name(
        {"contacts": EVENTS_CONTACTS, "messages": EVENTS_MESSAGES, "webhooks": WEBHOOKS}[args.kind]
    )

    async def _produce() -> int:
        producer = AIOKafkaProducer(
            **client_options(settings),
            acks="all",
            linger_ms=settings.producer_linger_ms,
        )
        await producer.start()
        try:
            pending = []
            for number, line in _lines(args.file):
                try:
                    key, value = record_for(args.kind, line)
                except NotJsonError as exc:
                    refused.append(number)
                    print(f"line {number}: {exc}; not sent", file=sys.stderr)
                    continue
                pending.append(await producer.send(topic, key=key, value=value))
            await asyncio.gather(*pending)
            return len(pending)
        finally:
            await producer.stop()

    refused: list[int] = []
    count = asyncio.run(_produce())
    print(f"produced {count} record(s) to {topic}")
    if refused:
        print(f"{len(refused)} line(s) not sent: {', '.join(map(str, refused))}", file=sys.stderr)
        return 1
    return 0


# -- events.invalid -------------------------------------------------------------------------
def _moment(text: str) -> float:
    """Unix seconds, or an ISO-8601 moment (UTC when it names no zone)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a unix time or ISO-8601 moment: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def cmd_invalid(args: argparse.Namespace) -> int:
    """List what events.invalid holds, newest first (the same as GET /api/invalid)."""
    from app.kafka.invalid_log import list_invalid

    scan = asyncio.run(list_invalid(get_settings(), args.since, args.limit))
    for record in scan.items:
        at = datetime.fromtimestamp(record.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        place = f"{record.topic}[{record.partition}]@{record.offset}"
        print(f"{at}  {place}  {record.stage}: {record.error}")
    if not scan.items:
        print("events.invalid holds nothing" + (" since then" if args.since else ""))
    if scan.truncated:
        print("note: the scan ran out of time; older records were not looked at")
    return 0


# -- replay ---------------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    """Put dead letters back on ``deliveries`` (same selection as POST /api/failed/replay)."""
    from aiokafka import AIOKafkaProducer

    from app.kafka.replay import list_dead_letters, replay, select
    from app.kafka.security import client_options
    from app.kafka.topics import TopicCatalog

    if not (args.delivery_id or args.webhook_id or args.since is not None):
        print("say what to replay: --delivery-id, --webhook-id, or --since/--until")
        return 2
    settings = get_settings()
    deliveries = TopicCatalog.from_settings(settings).deliveries

    async def _replay() -> list[str]:
        scan = await list_dead_letters(settings, [args.webhook_id] if args.webhook_id else None)
        if scan.truncated:
            print("note: the dead-letter scan ran out of time; older ones were not looked at")
        letters = select(
            scan.items, args.delivery_id or None, args.webhook_id, args.since, args.until
        )
        if args.dry_run:
            return [x.job.delivery_id for x in letters]
        producer = AIOKafkaProducer(**client_options(settings), acks="all")
        await producer.start()
        try:

            async def send(key: bytes, value: bytes) -> None:
                await (await producer.send(deliveries, key=key, value=value))

            return await replay(letters, send)
        finally:
            await producer.stop()

    ids = asyncio.run(_replay())
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {len(ids)} delivery(ies)" + ("".join(f"\n  {i}" for i in ids)))
    return 0


# -- portal links ---------------------------------------------------------------------------
def cmd_portal_link(args: argparse.Namespace) -> int:
    """Print a portal link for one account (what POST /api/portal-links returns)."""
    from app.flow.portal import issue_portal_token, portal_url

    settings = get_settings()
    if settings.portal_secret is None:
        print("hookstream portal-link: set HOOKSTREAM_PORTAL_SECRET (the workers' too)")
        return 2
    key = settings.portal_secret.get_secret_value().encode()
    token = issue_portal_token(key, args.account, time.time() + args.ttl)
    print(portal_url(settings.public_url or f"http://127.0.0.1:{args.web_port}", token))
    return 0


# -- receiver -------------------------------------------------------------------------------
def cmd_receiver(args: argparse.Namespace) -> int:
    from app.tools.receiver import run_receiver

    run_receiver(args.port, args.secret or [])
    return 0


# -- run (make run) -------------------------------------------------------------------------
def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    """Start a local broker (unless HOOKSTREAM_BROKER is set) and one worker.

    Ctrl-C or SIGTERM stops both: the worker first (it drains), then the broker. SIGTERM used
    to kill this process alone and leave the two running.
    """
    from app.kafka.brokers import Engine, start_broker

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)  # the terminal closed: its children live apart

    env = dict(os.environ)
    children: list[subprocess.Popen[bytes]] = []
    engine = Engine(args.engine)
    if not env.get("HOOKSTREAM_BROKER"):
        port = args.broker_port
        settings = get_settings()
        print(f"starting the local broker ({engine.value}) on 127.0.0.1:{port} ...", flush=True)
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        try:
            children.append(
                start_broker(
                    engine,
                    port,
                    _kafka_data_dir(settings, None),
                    log_path=Path(settings.data_dir) / f"{engine.value}-broker.log",
                    kafka_home=Path(settings.kafka_home) if settings.kafka_home else None,
                    jvm_opts=settings.kafka_jvm_opts,
                )
            )
        except Exception as exc:  # a missing JDK, Maven, a busy port: say so in one line
            print(f"hookstream run: {exc}", file=sys.stderr)
            return 2
        env["HOOKSTREAM_BROKER"] = f"kafka://127.0.0.1:{port}"
        # Local demo only: the debug receiver is plain http on loopback.
        env.setdefault("HOOKSTREAM_ALLOW_HTTP", "true")
        env.setdefault("HOOKSTREAM_ALLOW_PRIVATE_NETWORKS", "true")
    # The admin API, feedback tokens and the portal on, with secrets made for this run (the
    # admin token in a file only the owner can read; the terminal shows no secret).
    data_dir = Path(env.get("HOOKSTREAM_DATA_DIR") or Settings().data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in (
        "HOOKSTREAM_ADMIN_TOKEN",
        "HOOKSTREAM_TRACKING_SECRET",
        "HOOKSTREAM_PORTAL_SECRET",
    ):
        env.setdefault(name, secrets.token_urlsafe(32))
    token_file = data_dir / "admin-token"
    token_file.write_text(env["HOOKSTREAM_ADMIN_TOKEN"] + "\n")
    token_file.chmod(0o600)
    env.setdefault("HOOKSTREAM_PUBLIC_URL", f"http://127.0.0.1:{args.web_port}")
    os.environ.update(env)
    settings = Settings()
    hookstream = str(Path(sys.executable).parent / "hookstream")
    try:
        subprocess.run([hookstream, "topics", "create"], env=env, check=True)  # noqa: S603
        print(_next_steps(settings, args.web_port, token_file), flush=True)
        # Its own session: Ctrl-C reaches this process alone, which stops the worker (it
        # drains) and only then the broker; the terminal's SIGINT to all of them at once had
        # the broker gone first and the worker print ~130 lines of connection errors.
        worker = subprocess.Popen(  # noqa: S603 - our own entry point
            [hookstream, "worker", "--web-port", str(args.web_port)],
            env=env,
            start_new_session=True,
        )
        children.append(worker)
        return worker.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut this short
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()


def _next_steps(settings: Settings, web_port: int, token_file: Path) -> str:
    from app.flow.portal import issue_portal_token, portal_url

    bin_dir = Path(sys.executable).parent
    produce = f"HOOKSTREAM_BROKER={settings.broker} {bin_dir}/hookstream produce"
    secret = settings.portal_secret.get_secret_value() if settings.portal_secret else ""
    link = portal_url(
        settings.public_url or f"http://127.0.0.1:{web_port}",
        issue_portal_token(secret.encode(), DEMO_ACCOUNT, time.time() + 86400),
    )
    return f"""
hookstream is starting on {settings.broker} (topics prefixed {settings.topic_prefix!r}).
Plain http and loopback webhook URLs are allowed in this local run.

The account portal of the demo account (valid 24 h):
  {link}
Admin API: http://{settings.web_host}:{web_port}/api  (bearer token in {token_file})

In another terminal:
  1. a receiver that prints every request and checks its signature:
       {bin_dir}/hookstream receiver --port 8080 --secret $(head -1 {EXAMPLES}/secret.txt)
  2. a webhook pointing at it, then sample events:
       {produce} webhooks {EXAMPLES}/webhooks.jsonl
       {produce} messages {EXAMPLES}/messages.jsonl
       {produce} contacts {EXAMPLES}/contacts.jsonl
Health: http://{settings.web_host}:{web_port}/health   Stop: Ctrl-C
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookstream", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run a local broker in the foreground")
    p.add_argument(
        "--engine",
        choices=["tansu", "kafka"],
        default="tansu",
        help="tansu: embedded, memory only (default); kafka: Apache Kafka 4.4 from Maven jars",
    )
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--data-dir", help="kafka only; default $HOOKSTREAM_DATA_DIR/kafka")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("topics", help="manage hookstream's topics")
    p.add_argument("action", choices=["create"])
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("worker", help="run a Faust worker (creates the topics first)")
    p.add_argument("--web-port", type=int, default=6066, help="0 disables the web server")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("produce", help="produce JSON lines to an input topic")
    p.add_argument("kind", choices=["contacts", "messages", "webhooks"])
    p.add_argument("file", nargs="?", default="-", help="a file of JSON lines, or - for stdin")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("invalid", help="list refused records of events.invalid, newest first")
    p.add_argument("--since", type=_moment, help="unix time or ISO-8601: refused at or after")
    p.add_argument("--limit", type=int, default=100, help="at most this many")
    p.set_defaults(func=cmd_invalid)

    p = sub.add_parser("replay", help="put dead letters back on deliveries")
    p.add_argument("--delivery-id", action="append", default=[], help="repeatable")
    p.add_argument("--webhook-id")
    p.add_argument("--since", type=float, help="unix time: failed at or after")
    p.add_argument("--until", type=float, help="unix time: failed before")
    p.add_argument("--dry-run", action="store_true", help="list what would be replayed")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("portal-link", help="print a portal link for one account")
    p.add_argument("--account", required=True)
    p.add_argument("--ttl", type=float, default=3600.0, help="seconds it stays valid")
    p.add_argument(
        "--web-port",
        type=int,
        default=6066,
        help="the worker's web port (HOOKSTREAM_PUBLIC_URL, when set, is used instead)",
    )
    p.set_defaults(func=cmd_portal_link)

    p = sub.add_parser("receiver", help="a debug receiver that prints requests")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--secret",
        action="append",
        help="whsec_... to verify signatures with; repeat it for several webhooks' secrets",
    )
    p.set_defaults(func=cmd_receiver)

    p = sub.add_parser("run", help="local broker + topics + one worker (make run)")
    p.add_argument("--engine", choices=["tansu", "kafka"], default="tansu")
    p.add_argument("--broker-port", type=int, default=9092)
    p.add_argument("--web-port", type=int, default=6066)
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
