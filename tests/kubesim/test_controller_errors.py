"""A controller that chokes on one object (however it got into the store) reports it once and
leaves every other object and every other controller working, as on a real cluster."""

from __future__ import annotations

from kubesim_helpers import deployment_yaml, statefulset_yaml

from kubesim.controllers import Controllers


def _smuggle_broken_deployment(sim) -> None:
    """Store a Deployment the API would refuse (as an older server version might have left
    it): its rollingUpdate bound is not a number, which the controller cannot resolve."""
    sim.apply(deployment_yaml(name="broken", replicas=1))
    with sim.store.lock:
        dep = sim.store.get("deployments", "default", "broken")
        bad = {**dep, "spec": {**dep["spec"], "strategy": {"rollingUpdate": {"maxSurge": "abc%"}}}}
        bad["metadata"] = {**dep["metadata"], "generation": dep["metadata"]["generation"] + 1}
        sim.store.put("deployments", bad)


def test_one_broken_object_does_not_stop_the_other_controllers(kubesim):
    _smuggle_broken_deployment(kubesim)
    passes = kubesim.controllers.passes

    kubesim.apply(statefulset_yaml(replicas=2))  # needs PV binder, scheduler and kubelet

    kubesim.wait_for(
        lambda: kubesim.get("sts", "default", "pg")["status"].get("readyReplicas") == 2,
        timeout=10,
        message="the StatefulSet never became Ready next to a broken Deployment",
    )
    assert kubesim.controllers.passes > passes + 2
    errors = list(kubesim.controllers.errors)
    assert len(errors) == 1  # reported once, not on every pass
    assert errors[0].startswith("deployment default/broken: ValueError(")


def test_a_recovered_object_that_fails_again_is_reported_again(kubesim):
    _smuggle_broken_deployment(kubesim)
    kubesim.wait_for(lambda: len(kubesim.controllers.errors) == 1)
    kubesim.apply(deployment_yaml(name="broken", replicas=1))  # repaired through the API
    kubesim.wait_for(
        lambda: kubesim.get("deploy", "default", "broken")["status"].get("readyReplicas") == 1
    )
    _smuggle_broken_deployment(kubesim)
    kubesim.wait_for(lambda: len(kubesim.controllers.errors) == 2)


def test_the_error_list_is_bounded(kubesim):
    controllers = Controllers(kubesim.store, kubesim.api, kubesim.knobs, error_log_size=3)
    for i in range(10):
        controllers._failed("deployment", f"ns/d{i}", ValueError(i))
    assert list(controllers.errors) == [
        f"deployment ns/d{i}: ValueError({i})" for i in range(7, 10)
    ]
    assert controllers.errors[-1] == "deployment ns/d9: ValueError(9)"
    assert controllers.errors[:1] == ["deployment ns/d7: ValueError(7)"]  # slices, as a list
