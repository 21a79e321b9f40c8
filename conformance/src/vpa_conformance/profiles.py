"""Hypothesis profiles of the suite: ``dev``, ``ci`` and ``thorough``.

The profile is chosen by the ``HYPOTHESIS_PROFILE`` environment variable when it names one of
these; otherwise it is ``ci`` when ``CI`` is set and ``dev`` when not. Each contract clause has a
base example count (sized for ``ci``: one provider's whole store contract takes about 2-3 minutes
on a slow embedded engine, under one minute on the memory store); a profile scales it.

The suite applies its settings to its own tests only (an explicit ``@settings`` per test), so
installing the package never changes the settings of anyone else's hypothesis tests. For plugin
authors' own tests the same profiles are registered with hypothesis as ``vpa-dev``, ``vpa-ci``
and ``vpa-thorough`` (not as ``ci``, which is hypothesis' own built-in profile).

``VPA_CONFORMANCE_NO_SHRINK=1`` turns shrinking off: a failure is reported as found, unshrunk
(the suite's own tests use it to prove quickly that broken stores are caught).
``VPA_CONFORMANCE_DERANDOMIZE=1`` makes every clause draw the same examples on every run (a seed
fixed per clause, no example database): the suite's mutant tests use it, so that a mutant the
suite claims to catch is caught on every run, not on most.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, settings


@dataclass(frozen=True)
class Profile:
    name: str
    #: multiplies each clause's base example count
    scale: float
    #: steps per run of the stateful machine
    stateful_steps: int


PROFILES: dict[str, Profile] = {
    "dev": Profile("dev", 0.5, 12),
    "ci": Profile("ci", 1.0, 20),
    "thorough": Profile("thorough", 6.0, 40),
}

SUPPRESSED = (
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.differing_executors,  # one contract method runs for many store classes
)


def active_profile() -> Profile:
    name = os.environ.get("HYPOTHESIS_PROFILE", "")
    if name in PROFILES:
        return PROFILES[name]
    return PROFILES["ci" if os.environ.get("CI") else "dev"]


def _phases() -> tuple[Phase, ...]:
    if os.environ.get("VPA_CONFORMANCE_NO_SHRINK", "") not in ("", "0"):
        return (Phase.explicit, Phase.reuse, Phase.generate)
    return (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)


def _derandomized() -> bool:
    return os.environ.get("VPA_CONFORMANCE_DERANDOMIZE", "") not in ("", "0")


def example_count(base: int, profile: Profile | None = None) -> int:
    profile = profile or active_profile()
    return max(1, round(base * profile.scale))


def clause_settings(base: int, *, stateful: bool = False) -> settings:
    """The settings of one clause: ``base`` examples in ``ci``, scaled by the active profile."""
    profile = active_profile()
    extra = {"stateful_step_count": profile.stateful_steps} if stateful else {}
    return settings(
        max_examples=example_count(base, profile),
        deadline=None,
        suppress_health_check=SUPPRESSED,
        phases=_phases(),
        print_blob=True,
        derandomize=_derandomized(),
        database=None if _derandomized() else settings.default.database,
        **extra,
    )


for _profile in PROFILES.values():
    settings.register_profile(
        f"vpa-{_profile.name}",
        max_examples=example_count(20, _profile),
        stateful_step_count=_profile.stateful_steps,
        deadline=None,
        suppress_health_check=SUPPRESSED,
    )
