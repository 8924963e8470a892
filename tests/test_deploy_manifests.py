"""The KubeRay manifests keep Ray's control ports inside the cluster (issue #16): ClusterIP
Services only, token auth from a Secret on every Ray pod, a NetworkPolicy that lets in only the
cluster's own pods and the job service, and a /skills ingress that answers only with a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.executors.serve_auth import TOKEN_ENV, ingress_refusal

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "kuberay"
RAY_PORTS = {6379, 8265, 10001}  # GCS, dashboard / Jobs API, Ray Client
RAY_LABEL = {"app.kubernetes.io/part-of": "orchestrator-ray"}
SERVICE_LABEL = {"app.kubernetes.io/name": "orchestrator-service"}


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _cluster_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["rayClusterConfig"] if doc["kind"] == "RayService" else doc["spec"]


def _pod_templates(spec: dict[str, Any]) -> list[dict[str, Any]]:
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [group["template"] for group in groups]


def _walk(node: Any) -> Any:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.fixture(scope="module")
def clusters() -> list[dict[str, Any]]:
    return [*_docs("raycluster.yaml"), *_docs("rayservice.yaml")]


def test_no_service_reaches_beyond_the_cluster(clusters):
    for doc in clusters:
        spec = _cluster_spec(doc)
        assert spec["headGroupSpec"].get("serviceType") == "ClusterIP", doc["metadata"]["name"]
        for node in _walk(doc):
            if isinstance(node, dict):
                assert node.get("type") not in ("LoadBalancer", "NodePort")
                assert node.get("serviceType") in (None, "ClusterIP")
                assert "hostPort" not in node and not node.get("hostNetwork")
    serve = next(d for d in clusters if d["kind"] == "RayService")["spec"]["serveService"]
    assert serve["spec"]["type"] == "ClusterIP"


def test_every_ray_pod_has_token_auth_from_a_secret(clusters):
    for doc in clusters:
        for template in _pod_templates(_cluster_spec(doc)):
            assert template["metadata"]["labels"].items() >= RAY_LABEL.items()
            for container in template["spec"]["containers"]:
                env = {e["name"]: e for e in container.get("env", [])}
                assert env["RAY_AUTH_MODE"]["value"] == "token", container["name"]
                token = env["RAY_AUTH_TOKEN"]
                assert "value" not in token  # never a literal in the manifest
                assert token["valueFrom"]["secretKeyRef"]["name"]
        assert doc["spec"].get("rayVersion", "2.60.0") >= "2.52"  # token auth needs Ray 2.52+


def test_the_network_policy_lets_in_only_ray_pods_and_the_service(clusters):
    [policy] = _docs("networkpolicy.yaml")
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"] == RAY_LABEL
    reachable: dict[int, list[dict[str, str]]] = {}
    for rule in policy["spec"]["ingress"]:
        peers = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
        assert all(peer for peer in peers)  # no open peer (empty selector, ipBlock)
        if peers == [RAY_LABEL]:
            continue  # the cluster's own pods: any port
        assert "ports" in rule, rule  # anyone else: named ports only
        for port in rule["ports"]:
            reachable.setdefault(port["port"], []).extend(peers)
    for port in RAY_PORTS | {8000}:
        assert reachable[port] == [SERVICE_LABEL], port  # the job service only
    assert set(reachable) == RAY_PORTS | {8000, 8080}


def test_the_skills_ingress_needs_the_token(clusters):
    service = next(d for d in clusters if d["kind"] == "RayService")
    assert "route_prefix: /skills" in service["spec"]["serveConfigV2"]
    for template in _pod_templates(_cluster_spec(service)):
        for container in template["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env[TOKEN_ENV]["valueFrom"]["secretKeyRef"]["name"]
    assert ingress_refusal(None, None) is not None  # no token configured: closed
    assert ingress_refusal("Bearer s3cret", None) is not None
    assert ingress_refusal(None, "s3cret") is not None
    assert ingress_refusal("Bearer wrong", "s3cret") is not None
    assert ingress_refusal("Basic s3cret", "s3cret") is not None
    assert ingress_refusal("Bearer s3cret", "s3cret") is None
