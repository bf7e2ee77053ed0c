"""deploy/rayservice.yaml: its Serve config is valid for Ray and builds the duplex
application it claims (codec-LM profile, one replica per GPU, capacity from the engine).

The manifest as a whole was checked against KubeRay's RayService CRD schema (see
docs/deploy.md, "Checking the manifest"); the CRD is not vendored here."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import ray
import yaml
from ray.serve.schema import ServeDeploySchema

from duplex.transports import ray_serve
from duplex.transports.ray_proxy import PROXY_CALLBACK, PROXY_CALLBACK_ENV, proxy_middlewares

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "rayservice.yaml"


def _manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_the_serve_config_is_valid_and_builds_one_gpu_replica_per_32_sessions():
    doc = _manifest()
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayService"
    serve_config = ServeDeploySchema.model_validate(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    (app,) = serve_config.applications
    module, attr = app.import_path.split(":")
    assert getattr(importlib.import_module(module), attr) is ray_serve.app_builder

    config, options = ray_serve.app_args(app.args)
    assert config.name == "codec-lm" and config.models.kind == "codec_lm"
    assert config.engine.max_sessions == 32 and config.models.codec_lm.slots == 32
    deployment = ray_serve.deployment_of(config, options)
    assert deployment.max_ongoing_requests == 33  # the engine's sessions and the one told "busy"
    assert deployment.ray_actor_options["num_gpus"] == 1
    assert options.max_replicas == 8
    assert options.host == "0.0.0.0"  # the replicas' access rules: not loopback, so a token is required


def test_every_pod_runs_the_proxy_middleware_and_the_image_matches_ray():
    cluster = _manifest()["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]
    for pod in pods:
        (container,) = pod["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") or e.get("valueFrom") for e in container["env"]}
        assert env[PROXY_CALLBACK_ENV] == PROXY_CALLBACK
        assert f"ray{cluster['rayVersion']}" in container["image"]
    assert proxy_middlewares()  # the callback Serve's proxy imports
    major, minor = (int(x) for x in cluster["rayVersion"].split(".")[:2])
    assert (major, minor) >= (2, 60) and ray.__version__.split(".")[0] == str(major)
    gpu_workers = cluster["workerGroupSpecs"][0]
    assert gpu_workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu_workers["maxReplicas"] >= 8  # a pod per GPU replica at the autoscaling bound
    # The replicas run on the workers and read the clients' token there, from a Secret.
    (worker,) = gpu_workers["template"]["spec"]["containers"]
    token = {e["name"]: e for e in worker["env"]}["DUPLEX_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "duplex-token", "key": "token"}


def test_bad_application_args_say_what_is_known():
    with pytest.raises(ValueError, match="unknown duplex application args"):
        ray_serve.app_args({"config": "scripted", "replica": 2})
    with pytest.raises(ValueError, match="list of 'key=value'"):
        ray_serve.app_args({"config": "scripted", "set": "engine.max_sessions=2"})
