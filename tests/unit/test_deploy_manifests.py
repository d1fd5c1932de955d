"""deploy/: every manifest validates offline, and topics/settings cannot drift from the code.

Core kinds are validated against the Kubernetes schemas bundled by ``kubernetes-validate``;
CRDs (KEDA, Strimzi, Prometheus operator) are checked for the fields hookstream relies on.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.kafka.topics import TopicCatalog
from app.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BASE, OVERLAY = DEPLOY / "k8s" / "base", DEPLOY / "k8s" / "overlays" / "example"
K8S_VERSION = "1.32.0"
CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def base_documents() -> list[dict[str, Any]]:
    kustomization = load(BASE / "kustomization.yaml")[0]
    return [doc for name in kustomization["resources"] for doc in load(BASE / name)]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def validate(doc: dict[str, Any]) -> None:
    if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
        assert doc["metadata"]["name"] and isinstance(doc["spec"], dict), doc
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    "doc", base_documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_every_base_manifest_validates(doc: dict[str, Any]) -> None:
    validate(doc)


def settings_map() -> dict[str, str]:
    [configmap] = by_kind(base_documents(), "ConfigMap")
    data: dict[str, str] = configmap["data"]
    return data


def test_configmap_and_secret_only_name_real_settings() -> None:
    known = {f"HOOKSTREAM_{name.upper()}" for name in Settings.model_fields}
    [secret] = by_kind(base_documents(), "Secret")
    names = set(settings_map()) | set(secret["stringData"])
    assert names <= known, names - known
    assert set(secret["stringData"].values()) == {"CHANGE_ME"}  # placeholders only


def test_kafka_topics_equal_what_topics_create_makes() -> None:
    data = settings_map()
    settings = Settings(
        topic_prefix=data["HOOKSTREAM_TOPIC_PREFIX"],
        partitions=int(data["HOOKSTREAM_PARTITIONS"]),
        retry_delays=data["HOOKSTREAM_RETRY_DELAYS"],  # type: ignore[arg-type]
    )
    expected = {s.name: s for s in TopicCatalog.from_settings(settings).specs()}
    assert settings.topic_prefix == "hookstream."
    topics = {t["spec"]["topicName"]: t["spec"] for t in by_kind(base_documents(), "KafkaTopic")}
    assert set(topics) == set(expected)
    for name, spec in topics.items():
        assert spec["partitions"] == expected[name].partitions, name
        assert spec["replicas"] == int(data["HOOKSTREAM_REPLICATION_FACTOR"]), name
        policy = expected[name].config.get("cleanup.policy", "delete")
        assert spec["config"]["cleanup.policy"] == policy, name


def test_autoscaling_never_exceeds_partitions_and_watches_the_input_topics() -> None:
    data = settings_map()
    [scaled] = by_kind(base_documents(), "ScaledObject")
    [deployment] = by_kind(base_documents(), "Deployment")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["maxReplicaCount"] <= int(data["HOOKSTREAM_PARTITIONS"])
    catalog = TopicCatalog.from_settings(Settings(topic_prefix=data["HOOKSTREAM_TOPIC_PREFIX"]))
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["topic"] for t in triggers} == {
        catalog.events_contacts,
        catalog.events_messages,
    }
    assert {t["metadata"]["consumerGroup"] for t in triggers} == {data["HOOKSTREAM_APP_ID"]}


def test_workers_are_probed_on_health_drain_and_run_as_non_root() -> None:
    [deployment] = by_kind(base_documents(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    timeout = float(settings_map()["HOOKSTREAM_REQUEST_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] >= 3 * timeout
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["topologySpreadConstraints"]
    [monitor] = by_kind(base_documents(), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_dockerfile_runs_the_worker_as_non_root_with_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "USER 10001" in text
    assert 'ENTRYPOINT ["hookstream", "worker"]' in text
    assert "HEALTHCHECK" in text and "/health" in text


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kustomize renderer (kubectl)")
def test_the_example_overlay_renders_and_validates() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    assert len(docs) == len(base_documents())
    for doc in docs:
        validate(doc)
    [deployment] = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert all(
        d["metadata"].get("namespace") == "hookstream" for d in docs if d["kind"] != "Namespace"
    )
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/hookstream:0.1.0"
